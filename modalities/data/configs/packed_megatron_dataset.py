"""Config of ``dataset/packed_mem_map_dataset_megatron`` (torch-free)."""

from pathlib import Path

from modalities.data.config import SAMPLE_KEY_DOC, SequenceLength
from modalities.registry.types import ComponentConfig, Field


class PackedMemMapDatasetMegatronConfig(ComponentConfig):
    """Samples of sequence_length + 1 tokens aligned to document starts where they fit (Megatron-style)."""

    raw_data_path: Path = Field(description="The packed .pbin file (its document index is used).")
    sequence_length: SequenceLength = Field(description="Model input length; samples hold sequence_length + 1 tokens.")
    sample_key: str = Field(description=SAMPLE_KEY_DOC)
