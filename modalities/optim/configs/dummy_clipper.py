"""Config of ``gradient_clipper/dummy`` (torch-free)."""

from __future__ import annotations

from modalities.registry.types import ComponentConfig


class DummyGradientClipperConfig(ComponentConfig):
    """Leaves the gradients alone and returns -1 as the norm (no norm is computed)."""
