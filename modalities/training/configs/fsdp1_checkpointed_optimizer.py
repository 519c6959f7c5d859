"""Config of ``optimizer/fsdp1_checkpointed`` (torch-free)."""

from __future__ import annotations

from modalities.registry.types import ComponentConfig, ComponentRef, Field


class FSDP1CheckpointedOptimizerConfig(ComponentConfig):
    """An optimizer with its state loaded from a full optimizer state dict file (the reference's FSDP1 `.bin`)."""

    checkpoint_loading: ComponentRef["checkpoint_loading"] = Field(description="checkpoint_loading/fsdp1.")
    checkpoint_path: str = Field(description="The optimizer `.bin` file.")
    wrapped_model: ComponentRef["model"] = Field(description="The sharded model the optimizer works on.")
    optimizer: ComponentRef["optimizer"] = Field(description="The optimizer to load into.")
