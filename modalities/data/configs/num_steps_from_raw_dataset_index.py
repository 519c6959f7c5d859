"""Config of ``number_conversion/num_steps_from_raw_dataset_index`` (torch-free)."""

from pathlib import Path

from modalities.conversion.config import num_ranks_field
from modalities.registry.types import ComponentConfig, Field, PositiveStrictInt


class NumStepsFromRawDatasetIndexConfig(ComponentConfig):
    """Optimizer steps for one pass over the documents of a raw index (one document per sample)."""

    raw_index_path: Path = Field(description="The raw index (.idx) of the JSONL file.")
    num_ranks: int = num_ranks_field()
    local_micro_batch_size: PositiveStrictInt = Field(description="Samples per rank per forward/backward pass.")
    gradient_accumulation_steps: PositiveStrictInt = Field(description="Micro-batches per optimizer step.")
