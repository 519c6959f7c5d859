"""Config of ``number_conversion/num_tokens_from_packed_mem_map_dataset_continuous`` (torch-free)."""

from pathlib import Path

from pydantic import StrictBool

from modalities.conversion.config import dp_degree_field
from modalities.data.config import SequenceLength
from modalities.registry.types import ComponentConfig, Field, PositiveStrictInt


class NumTokensFromPackedMemMapDatasetContinuousConfig(ComponentConfig):
    """Tokens training really consumes from a .pbin: whole steps of all ranks, micro-batches and accumulation."""

    dataset_path: Path = Field(description="The packed .pbin file.")
    sequence_length: SequenceLength = Field(description="Model input length (tokens per sample).")
    dp_degree: int = dp_degree_field()
    local_micro_batch_size: PositiveStrictInt = Field(description="Samples per rank per forward/backward pass.")
    gradient_accumulation_steps: PositiveStrictInt = Field(description="Micro-batches per optimizer step.")
    sample_key: str = Field(default="text", description="Accepted as in the reference; counting does not use it.")
    reuse_last_target: StrictBool = Field(
        default=True, description="As in the dataset: whether consecutive samples share one token."
    )
