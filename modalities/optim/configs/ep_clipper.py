"""Config of ``gradient_clipper/ep`` (torch-free)."""

from __future__ import annotations

from pydantic import Field

from modalities.optim.configs.fsdp2_clipper import FSDP2GradientClipperConfig


class EPGradientClipperConfig(FSDP2GradientClipperConfig):
    """Clip the gradients of an expert-parallel model (experts sharded over their own mesh, the rest over the
    data-parallel one) to a maximum total norm; every parameter counted once; return the norm."""

    error_if_nonfinite: bool = Field(
        default=False, description="Raise when the total norm is NaN or infinite (the reference's field)."
    )
