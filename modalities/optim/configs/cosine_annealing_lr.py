"""Config of ``scheduler/cosine_annealing_lr`` (torch-free)."""

from __future__ import annotations

from pydantic import Field

from modalities.optim.config import LAST_EPOCH_DOC, OPTIMIZER_DOC, LastEpoch, NonNegativeFloat, StepCount
from modalities.registry.types import ComponentConfig, ComponentRef


class CosineAnnealingLRSchedulerConfig(ComponentConfig):
    """torch CosineAnnealingLR: the lr follows a half cosine from the base lr to eta_min over t_max steps."""

    optimizer: ComponentRef["optimizer"] = Field(description=OPTIMIZER_DOC)
    t_max: StepCount = Field(description="Steps of the half cosine (torch's T_max).")
    eta_min: NonNegativeFloat = Field(default=0.0, description="Minimum learning rate.")
    last_epoch: LastEpoch = Field(default=-1, description=LAST_EPOCH_DOC)
