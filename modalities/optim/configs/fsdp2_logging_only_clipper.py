"""Config of ``gradient_clipper/fsdp2_logging_only`` (torch-free)."""

from __future__ import annotations

from pydantic import Field, field_validator

from modalities.optim.config import (
    DEVICE_MESH_DOC,
    MODEL_PARTS_ALIASES,
    NORM_TYPE_DOC,
    GradientNormType,
    upper_norm_type,
)
from modalities.registry.types import ComponentConfig, ComponentRef


class FSDP2LoggingOnlyGradientClipperConfig(ComponentConfig):
    """Compute and return the total norm of an FSDP2 model's gradients without clipping."""

    wrapped_model: ComponentRef["model"] | list[ComponentRef["model"]] = Field(
        validation_alias=MODEL_PARTS_ALIASES,
        description="The model, or its parts, whose gradient norm is measured (also `wrapped_model_or_parts`).",
    )
    norm_type: GradientNormType = Field(description=NORM_TYPE_DOC)
    device_mesh: ComponentRef["device_mesh"] | None = Field(default=None, description=DEVICE_MESH_DOC)

    _normalize_norm_type = field_validator("norm_type", mode="before")(upper_norm_type)
