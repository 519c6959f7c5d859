"""Config of ``optimizer/checkpointed`` (torch-free)."""

from __future__ import annotations

from modalities.registry.types import ComponentConfig, ComponentRef, Field


class CheckpointedOptimizerConfig(ComponentConfig):
    """An optimizer with its state loaded from a checkpoint folder."""

    optimizer: ComponentRef["optimizer"] = Field(description="The optimizer to load into.")
    wrapped_model: ComponentRef["model"] = Field(description="The model the optimizer works on.")
    checkpoint_loading: ComponentRef["checkpoint_loading"] = Field(description="How the checkpoint is read.")
    checkpoint_path: str = Field(description="The checkpoint folder.")
