"""Config of ``gradient_clipper/fsdp_logging_only`` and ``gradient_clipper/fsdp1_logging_only`` (torch-free)."""

from __future__ import annotations

from pydantic import Field, field_validator

from modalities.optim.config import NORM_TYPE_DOC, GradientNormType, upper_norm_type
from modalities.registry.types import ComponentConfig, ComponentRef


class FSDPLoggingOnlyGradientClipperConfig(ComponentConfig):
    """Compute and return the total gradient norm without clipping."""

    wrapped_model: ComponentRef["model"] = Field(description="The model whose gradient norm is measured.")
    norm_type: GradientNormType = Field(description=NORM_TYPE_DOC)

    _normalize_norm_type = field_validator("norm_type", mode="before")(upper_norm_type)
