"""Config of ``gradient_clipper/fsdp`` and ``gradient_clipper/fsdp1`` (torch-free)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from modalities.optim.config import NORM_TYPE_DOC, GradientNormType, upper_norm_type
from modalities.registry.types import ComponentConfig, ComponentRef


class FSDPGradientClipperConfig(ComponentConfig):
    """Clip the gradients to a maximum total norm and return the norm before clipping."""

    wrapped_model: ComponentRef["model"] = Field(description="The model whose gradients are clipped.")
    max_norm: Annotated[float, Field(gt=0.0)] = Field(description="Largest allowed total gradient norm.")
    norm_type: GradientNormType = Field(description=NORM_TYPE_DOC)

    _normalize_norm_type = field_validator("norm_type", mode="before")(upper_norm_type)
