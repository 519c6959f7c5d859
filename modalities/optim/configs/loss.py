"""Config of ``loss/clm_cross_entropy_loss`` (torch-free)."""

from __future__ import annotations

from pydantic import Field

from modalities.registry.types import ComponentConfig


class CLMCrossEntropyLossConfig(ComponentConfig):
    """Mean token cross-entropy of a causal language model."""

    target_key: str = Field(description="Key of the target token ids [B, T] in the batch's targets.")
    prediction_key: str = Field(description="Key of the logits [B, T, V] in the model's output.")
    ignore_index: int = Field(
        default=-100, strict=True, description="Target id excluded from the loss and from the token count."
    )
    weight: float = Field(default=1.0, description="Factor the loss is scaled by when losses are combined.")
    tag: str = Field(default="CLMCrossEntropyLoss", description="Name under which the loss is logged.")
