"""Config of ``checkpoint_saving/default`` (torch-free)."""

from __future__ import annotations

from modalities.registry.types import ComponentConfig, ComponentRef, Field


class CheckpointSavingConfig(ComponentConfig):
    """Saves checkpoints when the strategy says so, the way the execution says."""

    checkpoint_saving_strategy: ComponentRef["checkpoint_saving_strategy"] = Field(
        description="Decides when to save and which older checkpoints to delete."
    )
    checkpoint_saving_execution: ComponentRef["checkpoint_saving_execution"] = Field(
        description="Writes (and deletes) checkpoints on disk."
    )
