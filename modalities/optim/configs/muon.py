"""Config of ``optimizer/muon`` (torch-free)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from modalities.optim.config import Beta, NonNegativeFloat, PositiveFloat
from modalities.registry.types import ComponentConfig, ComponentRef, empty_list


class MuonOptimizerConfig(ComponentConfig):
    """Muon (momentum orthogonalized by Newton-Schulz; torch.optim.Muon) for the hidden layers' matrices, AdamW
    for every other parameter (embeddings, the output head, norms, biases), as one optimizer."""

    lr: PositiveFloat = Field(description="Learning rate of the Muon matrices (the base lr schedulers scale).")
    wrapped_model: ComponentRef["model"] = Field(description="The (possibly FSDP2-wrapped) model to optimize.")
    weight_decay: NonNegativeFloat = Field(
        default=0.1, description="Decoupled weight decay (lr * weight_decay per step) of every group not excluded."
    )
    weight_decay_groups_excluded: list[str] = Field(
        default_factory=empty_list,
        description="Names of the model's weight-decay groups (e.g. embedding, layernorm) whose parameters get "
        "weight decay 0, in Muon and in AdamW alike.",
    )
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(default=0.95, description="Muon's momentum factor.")
    nesterov: bool = Field(default=True, description="Nesterov momentum (the update looks ahead along it).")
    ns_coefficients: tuple[float, float, float] = Field(
        default=(3.4445, -4.775, 2.0315),
        description="Coefficients (a, b, c) of the quintic Newton-Schulz iteration X <- aX + (bA + cA^2)X, A = XX^T.",
    )
    eps: PositiveFloat = Field(
        default=1e-7, description="Lower bound of the norm the momentum is divided by before the iteration."
    )
    ns_steps: Annotated[int, Field(strict=True, gt=0, lt=100)] = Field(
        default=5, description="Newton-Schulz iterations per step."
    )
    adjust_lr_fn: Literal["original", "match_rms_adamw"] | None = Field(
        default=None,
        description="How the lr is scaled by a matrix's shape (A, B): original (None): sqrt(max(1, A/B)); "
        "match_rms_adamw: 0.2 * sqrt(max(A, B)), which lets Muon use an lr and weight decay tuned for AdamW.",
    )
    adam_w_lr: PositiveFloat | None = Field(
        default=None, description="Learning rate of the AdamW parameters (default: lr)."
    )
    adam_w_betas: tuple[Beta, Beta] = Field(
        default=(0.9, 0.95), description="AdamW's coefficients of the running averages of the gradient and its square."
    )
    adam_w_eps: PositiveFloat = Field(default=1e-8, description="AdamW's term added to the denominator.")
    adam_w_parameters: list[str] = Field(
        default_factory=lambda: [r"(^|\.)lm_head\."],
        description="Regular expressions (searched in parameter names) of 2-D parameters that AdamW takes instead "
        "of Muon, besides every embedding and every parameter that is not a matrix: by default the output head.",
    )

    @field_validator("adam_w_parameters")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        import re

        for index, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"adam_w_parameters[{index}] {pattern!r} is not a regular expression: {e}") from None
        return patterns
