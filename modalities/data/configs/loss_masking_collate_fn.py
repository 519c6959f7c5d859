"""Config of ``collate_fn/mask_loss_collator_wrapper`` (torch-free)."""

from modalities.registry.types import ComponentConfig, ComponentRef, Field, StrictInt


class LossMaskingTokenConfig(ComponentConfig):
    """The markers around the tokens trained on (e.g. the assistant's turns)."""

    b_include_to_loss_token: str = Field(description="Token after which the loss starts (not itself trained on).")
    e_include_to_loss_token: str = Field(description="Token at which the loss stops (not itself trained on).")


class LossMaskingCollateFnWrapperConfig(ComponentConfig):
    """Wraps a collator and sets every target outside begin..end marker pairs to loss_ignore_index."""

    wrapped_collate_fn: ComponentRef["collate_fn"] = Field(description="The collator that builds the batch.")
    target_keys_to_mask: list[str] = Field(min_length=1, description="Target keys to mask (e.g. `[target_ids]`).")
    loss_ignore_index: StrictInt = Field(description="Value the loss ignores (the loss's ignore_index, usually -100).")
    mask_tokens: LossMaskingTokenConfig = Field(description="The begin and end markers.")
    tokenizer: ComponentRef["tokenizer"] = Field(description="Tokenizer that turns the markers into token ids.")
