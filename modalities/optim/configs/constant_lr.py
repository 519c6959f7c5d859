"""Config of ``scheduler/constant_lr`` (torch-free)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from modalities.optim.config import LAST_EPOCH_DOC, OPTIMIZER_DOC, LastEpoch, StepCount
from modalities.registry.types import ComponentConfig, ComponentRef


class ConstantLRSchedulerConfig(ComponentConfig):
    """torch ConstantLR: the lr times factor for the first total_iters steps, then the lr itself."""

    optimizer: ComponentRef["optimizer"] = Field(description=OPTIMIZER_DOC)
    factor: Annotated[float, Field(ge=0.0, le=1.0)] = Field(description="Factor applied until total_iters.")
    total_iters: StepCount = Field(description="Steps during which the factor applies.")
    last_epoch: LastEpoch = Field(default=-1, description=LAST_EPOCH_DOC)
