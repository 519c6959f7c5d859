"""Config of ``checkpoint_saving_strategy/save_every_k_steps_checkpointing_strategy`` (torch-free)."""

from __future__ import annotations

from modalities.registry.types import ComponentConfig, Field, PositiveStrictInt


class SaveEveryKStepsCheckpointingStrategyConfig(ComponentConfig):
    """Save every k optimizer steps; never delete."""

    k: PositiveStrictInt = Field(description="Save when the number of steps done is a multiple of k.")
