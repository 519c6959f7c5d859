"""Config of ``optimizer/adam`` and ``optimizer/adam_w`` (torch-free)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from modalities.optim.config import NonNegativeFloat, PositiveFloat
from modalities.registry.types import ComponentConfig, ComponentRef, empty_list


class AdamOptimizerConfig(ComponentConfig):
    """Adam over the model's parameters, split into weight-decay groups by parameter name."""

    lr: PositiveFloat = Field(description="Learning rate (the base lr that schedulers scale).")
    wrapped_model: ComponentRef["model"] = Field(description="The (possibly FSDP2-wrapped) model to optimize.")
    betas: tuple[Annotated[float, Field(ge=0.0, lt=1.0)], Annotated[float, Field(ge=0.0, lt=1.0)]] = Field(
        description="Coefficients of the running averages of the gradient and its square, e.g. [0.9, 0.95]."
    )
    eps: PositiveFloat = Field(description="Term added to the denominator for numerical stability, e.g. 1e-8.")
    weight_decay: NonNegativeFloat = Field(description="Weight decay of every group not excluded.")
    weight_decay_groups_excluded: list[str] = Field(
        default_factory=empty_list,
        description=(
            "Names of the model's weight-decay groups (e.g. embedding, layernorm, linear; see the model's "
            "weight_decay_groups) whose parameters get weight decay 0."
        ),
    )
    foreach: bool | None = Field(default=None, description="torch's foreach implementation (None: torch decides).")
    fused: bool | None = Field(default=None, description="torch's fused implementation (None: torch decides).")


class AdamWOptimizerConfig(AdamOptimizerConfig):
    """AdamW (decoupled weight decay) over the model's parameters, split into weight-decay groups."""
