"""Config of ``scheduler/step_lr`` (torch-free)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from modalities.optim.config import LAST_EPOCH_DOC, OPTIMIZER_DOC, LastEpoch, StepCount
from modalities.registry.types import ComponentConfig, ComponentRef


class StepLRSchedulerConfig(ComponentConfig):
    """torch StepLR: multiply the lr by gamma every step_size steps."""

    optimizer: ComponentRef["optimizer"] = Field(description=OPTIMIZER_DOC)
    step_size: StepCount = Field(description="Steps between two decays.")
    gamma: Annotated[float, Field(ge=0.0)] = Field(description="Factor the lr is multiplied by at each decay.")
    last_epoch: LastEpoch = Field(default=-1, description=LAST_EPOCH_DOC)
