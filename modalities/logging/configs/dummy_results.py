"""Config of ``results_subscriber/dummy`` (torch-free)."""

from __future__ import annotations

from modalities.registry.types import ComponentConfig


class DummyResultSubscriberConfig(ComponentConfig):
    """Consumes results and shows nothing (the JSONL results file is written regardless)."""
