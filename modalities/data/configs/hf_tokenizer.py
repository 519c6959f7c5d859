"""Config of ``tokenizer/pretrained_hf_tokenizer`` (torch-free)."""

from typing import Literal

from pydantic import StrictBool

from modalities.registry.types import ComponentConfig, Field, NonNegativeStrictInt


class PreTrainedHFTokenizerConfig(ComponentConfig):
    """A Hugging Face fast tokenizer from a local folder, a tokenizer.json, or a cached hub id (never downloaded)."""

    pretrained_model_name_or_path: str = Field(
        description="Local folder saved with `save_pretrained` (holding tokenizer.json), a tokenizer.json file, or "
        "a hub id (`gpt2`, `org/name`) in the local Hugging Face cache."
    )
    max_length: NonNegativeStrictInt | None = Field(
        default=None, description="Length to truncate to (with `truncation`) or pad to (with `padding: max_length`)."
    )
    truncation: StrictBool = Field(default=False, description="Cut encodings longer than `max_length`.")
    padding: StrictBool | Literal["longest", "max_length", "do_not_pad"] = Field(
        default=False, description="Padding strategy of transformers: false, true/`longest`, or `max_length`."
    )
    special_tokens: dict[str, str | list[str]] | None = Field(
        default=None,
        description="Special tokens to mark, e.g. `{pad_token: <|endoftext|>}`; they must already be in the vocabulary.",
    )
