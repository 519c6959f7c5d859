"""Config of ``gradient_clipper/fsdp2`` (torch-free)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from modalities.optim.config import (
    DEVICE_MESH_DOC,
    MODEL_PARTS_ALIASES,
    NORM_TYPE_DOC,
    GradientNormType,
    upper_norm_type,
)
from modalities.registry.types import ComponentConfig, ComponentRef


class FSDP2GradientClipperConfig(ComponentConfig):
    """Clip the (DTensor-sharded) gradients of an FSDP2 model to a maximum total norm; return the norm."""

    wrapped_model: ComponentRef["model"] | list[ComponentRef["model"]] = Field(
        validation_alias=MODEL_PARTS_ALIASES,
        description="The model, or its parts, whose gradients are clipped (also `wrapped_model_or_parts`).",
    )
    max_norm: Annotated[float, Field(gt=0.0)] = Field(description="Largest allowed total gradient norm.")
    norm_type: GradientNormType = Field(description=NORM_TYPE_DOC)
    device_mesh: ComponentRef["device_mesh"] | None = Field(default=None, description=DEVICE_MESH_DOC)

    _normalize_norm_type = field_validator("norm_type", mode="before")(upper_norm_type)
