"""Config of ``app_state/dcp`` (torch-free)."""

from __future__ import annotations

from modalities.registry.types import ComponentConfig, ComponentRef, Field


class DCPAppStateConfig(ComponentConfig):
    """An app state loaded from a DCP checkpoint folder when built (the reference's warm start)."""

    raw_app_state: ComponentRef["app_state"] = Field(description="The app state (model, optimizer, scheduler).")
    checkpoint_dir_path: str = Field(description="The checkpoint folder (ours or the reference's).")
