"""The settings of a pack config (`modalities data pack_encoded_data`; torch-free)."""

import os
from pathlib import Path
from typing import Literal

from pydantic import FilePath, StrictBool, field_validator

from modalities.data.config import check_jq_pattern
from modalities.registry.types import ComponentConfig, Field, PositiveStrictInt


class PackEncodedDataSettings(ComponentConfig):
    """The `settings` block of a pack config (the tokenizer is the top-level `tokenizer` component). Other keys
    are variables for ${settings...} interpolation (e.g. `sequence_length`); `modalities data pack_encoded_data`
    reports one that looks like a misspelled field."""

    model_config = {**ComponentConfig.model_config, "extra": "allow"}

    src_path: FilePath = Field(description="The JSONL corpus.")
    dst_path: Path | None = Field(default=None, description="Output .pbin; defaults to src_path with suffix .pbin.")
    index_path: Path | None = Field(
        default=None, description="Raw index of src_path; defaults to src_path with suffix .idx."
    )
    jq_pattern: str = Field(default=".text", description="Where the text is in each JSON line, e.g. `.text`.")
    num_cpus: PositiveStrictInt = Field(
        default_factory=lambda: os.cpu_count() or 1,
        description="CPUs to tokenize on: threads encoding batches side by side for a Hugging Face fast tokenizer "
        "(one process), worker processes for any other tokenizer.",
    )
    eod_token: str = Field(description="Token appended after every document, e.g. `<|endoftext|>`.")
    processing_batch_size: PositiveStrictInt = Field(
        default=1000, description="Documents encoded in one batch (one call of the tokenizer)."
    )
    raw_samples_queue_size: PositiveStrictInt = Field(
        default=4, description="Batches queued for the workers beyond one per worker (bounds memory)."
    )
    processed_samples_queue_size: PositiveStrictInt = Field(
        default=4, description="Encoded batches that may wait to be written (bounds memory)."
    )
    skip_bad_documents: StrictBool = Field(
        default=False,
        description="Leave out documents that cannot be read or encoded (counted and reported) instead of stopping.",
    )
    special_tokens_in_text: Literal["as_tokens", "as_text"] = Field(
        default="as_tokens",
        description="A special token's string inside a document's text (e.g. a literal `<|endoftext|>` in web "
        "text): `as_tokens` encodes it as the token, as the reference does (an EOD inside a document); `as_text` "
        "encodes its characters, so each document ends with exactly one EOD and holds no other. Documents with "
        "an EOD inside are counted and reported either way. Keep `as_tokens` for text whose markers are meant "
        "(chat templates).",
    )
    tokenizer_engine: Literal["auto", "tiktoken", "huggingface"] = Field(
        default="auto",
        description="What encodes a Hugging Face byte-level BPE tokenizer (GPT-2, Llama-3, Qwen): `auto` uses "
        "tiktoken (the `tiktoken` extra) where it can express the tokenizer and gives its ids on a sample of the "
        "corpus and on built test documents, else Hugging Face tokenizers; `tiktoken` makes it an error when "
        "tiktoken cannot be used; `huggingface` never uses tiktoken. The ids, and so the file, are the same "
        "either way. SentencePiece and tokenizers of one's own keep their engine. Also --tokenizer-engine.",
    )
    overwrite: StrictBool = Field(default=False, description="Replace an existing output file.")

    @field_validator("jq_pattern")
    @classmethod
    def _check_pattern(cls, pattern: str) -> str:
        return check_jq_pattern(pattern)
