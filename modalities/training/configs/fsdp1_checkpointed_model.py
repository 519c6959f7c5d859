"""Config of ``model/fsdp1_checkpointed`` (torch-free)."""

from __future__ import annotations

from modalities.registry.types import ComponentConfig, ComponentRef, Field


class FSDP1CheckpointedModelConfig(ComponentConfig):
    """A model with weights loaded from a full state dict file (the reference's FSDP1 `.bin`)."""

    checkpoint_loading: ComponentRef["checkpoint_loading"] = Field(
        description="checkpoint_loading/fsdp1 (loads, then shards) or checkpoint_loading/torch (a plain model)."
    )
    checkpoint_path: str = Field(description="The model `.bin`/`.pt` file.")
    model: ComponentRef["model"] = Field(description="The model to load into.")
