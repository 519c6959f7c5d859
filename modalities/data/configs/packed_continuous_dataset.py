"""Config of ``dataset/packed_mem_map_dataset_continuous`` (torch-free)."""

from pathlib import Path

from pydantic import StrictBool

from modalities.data.config import SAMPLE_KEY_DOC, SequenceLength
from modalities.registry.types import ComponentConfig, Field


class PackedMemMapDatasetContinuousConfig(ComponentConfig):
    """Fixed-length samples cut from the token stream of a .pbin file, across document boundaries."""

    raw_data_path: Path = Field(description="The packed .pbin file (from `modalities data pack_encoded_data`).")
    sequence_length: SequenceLength = Field(
        description="Model input length; each sample holds sequence_length + 1 tokens (inputs and shifted targets), "
        "or sequence_length tokens with reuse_last_target false."
    )
    sample_key: str = Field(description=SAMPLE_KEY_DOC)
    reuse_last_target: StrictBool = Field(
        default=True,
        description="Consecutive samples share one token (the last target is the next first input); false gives "
        "disjoint blocks of sequence_length tokens (for instruction tuning).",
    )
