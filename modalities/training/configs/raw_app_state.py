"""Config of ``app_state/raw`` (torch-free)."""

from __future__ import annotations

from modalities.registry.types import ComponentConfig, ComponentRef, Field


class RawAppStateConfig(ComponentConfig):
    """The state a checkpoint holds: model, optimizer and (optionally) learning-rate scheduler."""

    model: ComponentRef["model"] = Field(description="The model being trained (usually the initialized FSDP model).")
    optimizer: ComponentRef["optimizer"] = Field(description="The optimizer over the model's parameters.")
    lr_scheduler: ComponentRef["scheduler"] | None = Field(default=None, description="The learning-rate scheduler.")
