"""Config of ``checkpoint_loading/dcp`` and ``checkpoint_loading/fsdp`` (torch-free)."""

from __future__ import annotations

from modalities.registry.types import ComponentConfig, Field, StrictInt


class DCPCheckpointLoadingConfig(ComponentConfig):
    """Reads model and optimizer state from a sharded checkpoint folder into (sharded) model and optimizer."""

    global_rank: StrictInt | None = Field(default=None, ge=0, description="Accepted for compatibility; unused.")
