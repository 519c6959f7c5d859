"""Config of ``progress_subscriber/dummy`` (torch-free)."""

from __future__ import annotations

from modalities.registry.types import ComponentConfig


class DummyProgressSubscriberConfig(ComponentConfig):
    """Consumes progress messages and shows nothing."""
