"""Config of ``checkpoint_saving_strategy/save_k_most_recent_checkpoints_strategy`` (torch-free)."""

from __future__ import annotations

from modalities.registry.types import ComponentConfig, Field, StrictInt


class SaveKMostRecentCheckpointsStrategyConfig(ComponentConfig):
    """Save whenever offered and keep only the k most recent checkpoints."""

    k: StrictInt = Field(ge=-1, description="Checkpoints kept: -1 keeps all, 0 saves none.")
