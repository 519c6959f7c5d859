"""Parameter and gradient-reduction dtypes of the FSDP2 and EP wrappers (torch-free)."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict

from modalities.registry.types import Field


class PrecisionEnum(str, Enum):
    FP_32 = "FP_32"
    FP_16 = "FP_16"
    BF_16 = "BF_16"


class MixedPrecisionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    param_dtype: PrecisionEnum = Field(
        default=PrecisionEnum.FP_32, description="Dtype parameters are cast to for forward and backward."
    )
    reduce_dtype: PrecisionEnum = Field(
        default=PrecisionEnum.FP_32, description="Dtype gradients are reduced in across ranks."
    )
