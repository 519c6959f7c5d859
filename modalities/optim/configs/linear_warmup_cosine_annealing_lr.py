"""Config of ``scheduler/linear_warmup_cosine_annealing_lr`` (torch-free)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from modalities.optim.config import LAST_EPOCH_DOC, OPTIMIZER_DOC, LastEpoch, NonNegativeFloat, PositiveFloat, StepCount
from modalities.registry.types import ComponentConfig, ComponentRef


class LinearWarmupCosineAnnealingLRSchedulerConfig(ComponentConfig):
    """Linear warmup from initial_lr to the base lr over warmup_steps, then a half cosine down to final_lr at
    total_steps; final_lr after that."""

    optimizer: ComponentRef["optimizer"] = Field(description=OPTIMIZER_DOC)
    warmup_steps: Annotated[int, Field(strict=True, ge=0)] = Field(
        description="Steps of linear warmup; the base lr is reached at this step."
    )
    total_steps: StepCount = Field(description="Step at which the cosine reaches final_lr.")
    initial_lr: NonNegativeFloat = Field(
        default=0.0,
        description="Learning rate at step 0 (a value of 0 makes the first step a no-op; a small value avoids it).",
    )
    final_lr: NonNegativeFloat = Field(default=0.0, description="Learning rate at and after total_steps.")
    max_lr: PositiveFloat | None = Field(
        default=None,
        description="The peak lr, as the reference writes it; it must equal the optimizer's lr (which is the peak).",
    )
    last_epoch: LastEpoch = Field(default=-1, description=LAST_EPOCH_DOC)

    @model_validator(mode="after")
    def _warmup_fits(self) -> "LinearWarmupCosineAnnealingLRSchedulerConfig":
        if self.warmup_steps > self.total_steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) must not exceed total_steps ({self.total_steps})")
        return self
