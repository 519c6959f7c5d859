"""Config of ``tokenizer/pretrained_sp_tokenizer`` (torch-free)."""

from pydantic import StrictBool, model_validator

from modalities.registry.types import ComponentConfig, Field, warn_config


class PreTrainedSPTokenizerConfig(ComponentConfig):
    """A SentencePiece tokenizer from a local .model file."""

    tokenizer_model_file: str = Field(description="Path of the SentencePiece .model file.")
    padding: StrictBool | str | None = Field(
        default=None,
        description="Accepted as the reference's configs write it, which ignores it: SentencePiece encodes each "
        "text whole, unpadded.",
    )
    truncation: StrictBool | None = Field(
        default=None, description="Accepted as the reference's configs write it, which ignores it: nothing is cut."
    )

    @model_validator(mode="after")
    def _note_ignored_fields(self):
        if self.padding or self.truncation:
            warn_config("padding and truncation have no effect on a SentencePiece tokenizer (as in the reference)")
        return self
