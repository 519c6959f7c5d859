"""Config of ``dataset/mem_map_dataset`` (torch-free)."""

from pydantic import FilePath, field_validator

from modalities.data.config import SAMPLE_KEY_DOC, check_jq_pattern
from modalities.registry.types import ComponentConfig, ComponentRef, Field


class MemMapDatasetConfig(ComponentConfig):
    """Documents of a JSONL file (located through its raw index), tokenized when accessed."""

    raw_data_path: FilePath = Field(description="The JSONL file.")
    index_path: FilePath | None = Field(
        default=None, description="Its raw index (.idx); defaults to the JSONL path with the suffix .idx."
    )
    tokenizer: ComponentRef["tokenizer"] = Field(description="Tokenizer applied to each document on access.")
    jq_pattern: str = Field(default=".text", description="Where the text is in each JSON line, e.g. `.text`.")
    sample_key: str = Field(description=SAMPLE_KEY_DOC)

    @field_validator("jq_pattern")
    @classmethod
    def _check_pattern(cls, pattern: str) -> str:
        return check_jq_pattern(pattern)
