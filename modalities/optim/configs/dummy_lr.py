"""Config of ``scheduler/dummy_lr`` (torch-free)."""

from __future__ import annotations

from pydantic import Field

from modalities.optim.config import OPTIMIZER_DOC
from modalities.registry.types import ComponentConfig, ComponentRef


class DummyLRSchedulerConfig(ComponentConfig):
    """Keeps the optimizer's learning rate unchanged."""

    optimizer: ComponentRef["optimizer"] = Field(description=OPTIMIZER_DOC)
