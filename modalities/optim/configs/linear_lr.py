"""Config of ``scheduler/linear_lr`` (torch-free)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from modalities.optim.config import LAST_EPOCH_DOC, OPTIMIZER_DOC, LastEpoch, StepCount
from modalities.registry.types import ComponentConfig, ComponentRef


class LinearLRSchedulerConfig(ComponentConfig):
    """torch LinearLR: the lr factor goes linearly from start_factor to end_factor over total_iters steps."""

    optimizer: ComponentRef["optimizer"] = Field(description=OPTIMIZER_DOC)
    start_factor: Annotated[float, Field(gt=0.0, le=1.0)] = Field(description="Factor at step 0.")
    end_factor: Annotated[float, Field(ge=0.0, le=1.0)] = Field(description="Factor from step total_iters on.")
    total_iters: StepCount = Field(description="Steps over which the factor changes.")
    last_epoch: LastEpoch = Field(default=-1, description=LAST_EPOCH_DOC)
