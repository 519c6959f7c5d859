"""Config of ``scheduler/onecycle_lr`` (torch-free)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from modalities.optim.config import LAST_EPOCH_DOC, OPTIMIZER_DOC, LastEpoch, PositiveFloat, StepCount
from modalities.registry.types import ComponentConfig, ComponentRef


class OneCycleLRSchedulerConfig(ComponentConfig):
    """torch OneCycleLR: warm up to max_lr, then anneal to max_lr / div_factor / final_div_factor."""

    optimizer: ComponentRef["optimizer"] = Field(description=OPTIMIZER_DOC)
    max_lr: PositiveFloat | list[PositiveFloat] = Field(
        description="Peak learning rate (one value, or one per param group)."
    )
    total_steps: StepCount | None = Field(
        default=None, description="Steps in the cycle; or give epochs and steps_per_epoch instead."
    )
    epochs: StepCount | None = Field(default=None, description="Epochs in the cycle (with steps_per_epoch).")
    steps_per_epoch: StepCount | None = Field(default=None, description="Steps per epoch (with epochs).")
    pct_start: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        default=0.3, description="Fraction of the cycle spent increasing the lr."
    )
    anneal_strategy: Literal["cos", "linear"] = Field(default="cos", description="Shape of the annealing.")
    cycle_momentum: bool = Field(
        default=False,
        description="Cycle momentum (Adam's beta1) inversely to the lr between the two bounds. Defaults to false "
        "as in the reference's main branch (its 0.5.0 release defaulted to true: set it to keep that behaviour).",
    )
    base_momentum: PositiveFloat | list[PositiveFloat] = Field(
        default=0.85, description="Lower momentum bound (reached at the lr peak)."
    )
    max_momentum: PositiveFloat | list[PositiveFloat] = Field(
        default=0.95, description="Upper momentum bound (at the start and the end of the cycle)."
    )
    div_factor: PositiveFloat = Field(default=25.0, description="The initial lr is max_lr / div_factor.")
    final_div_factor: PositiveFloat = Field(
        default=1e4, description="The final lr is max_lr / div_factor / final_div_factor."
    )
    three_phase: bool = Field(
        default=False, description="Add a third phase annihilating the lr (fastai's schedule) instead of two."
    )
    last_epoch: LastEpoch = Field(default=-1, description=LAST_EPOCH_DOC)

    @model_validator(mode="after")
    def _needs_length(self) -> "OneCycleLRSchedulerConfig":
        if self.total_steps is None and (self.epochs is None or self.steps_per_epoch is None):
            raise ValueError("give total_steps, or both epochs and steps_per_epoch")
        total = self.total_steps if self.total_steps is not None else self.epochs * self.steps_per_epoch
        if not (isinstance(total, int) and isinstance(self.pct_start, float)):
            return self  # a deferred value: checked when built
        # torch's OneCycleLR interpolates each phase over (end - start) steps, with the first phase ending at
        # pct_start * total - 1: a phase it reaches with zero length divides by zero on the first step.
        warmup_end = float(self.pct_start * total) - 1
        if warmup_end == 0:
            raise ValueError(
                f"pct_start {self.pct_start} x total_steps {total} is a warm-up of exactly 1 step, which torch's "
                "OneCycleLR divides by zero on; choose a pct_start that gives 2 or more warm-up steps (or less than 1)"
            )
        last_end = total - 1 if not self.three_phase else float(2 * self.pct_start * total) - 2
        if not self.three_phase and total - 1 - warmup_end == 0:
            raise ValueError(
                f"pct_start {self.pct_start} leaves no annealing steps of the {total}, which torch's OneCycleLR "
                "divides by zero on; use a pct_start below 1"
            )
        if self.three_phase and total - 1 - last_end == 0:
            raise ValueError(
                f"pct_start {self.pct_start} x total_steps {total} leaves the third phase no steps, which torch's "
                "OneCycleLR divides by zero on; use a smaller pct_start"
            )
        return self
