"""Config of ``model/checkpointed`` (torch-free)."""

from __future__ import annotations

from modalities.registry.types import ComponentConfig, ComponentRef, Field


class CheckpointedModelConfig(ComponentConfig):
    """A model with weights loaded from a checkpoint."""

    model: ComponentRef["model"] = Field(description="The model to load into (sharded for `fsdp`, plain for `torch`).")
    checkpoint_loading: ComponentRef["checkpoint_loading"] = Field(description="How the checkpoint is read.")
    checkpoint_path: str = Field(description="A checkpoint folder (fsdp/dcp) or a `.pt` file (torch).")
