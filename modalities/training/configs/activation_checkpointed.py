"""Config of ``model/activation_checkpointed`` (torch-free)."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from modalities.registry.types import ComponentConfig, ComponentRef, Field, PositiveStrictInt


class ActivationCheckpointingVariant(str, Enum):
    full_activation_checkpointing = "full_activation_checkpointing"
    selective_layer_activation_checkpointing = "selective_layer_activation_checkpointing"
    selective_op_activation_checkpointing = "selective_op_activation_checkpointing"


# The ops whose outputs selective-op checkpointing may keep (the reference's names for them).
SAVEABLE_OPS = (
    "ops.aten.mm.default",
    "ops.aten._scaled_dot_product_efficient_attention.default",
    "ops.aten._scaled_dot_product_flash_attention.default",
    "ops._c10d_functional.reduce_scatter_tensor.default",
    "ops.aten.max.default",
)


class ActivationCheckpointingParams(BaseModel):
    """`{}` for full checkpointing, `{ac_freq}` for the selective-layer variant, `{save_ops_keys}` for the
    selective-op variant."""

    model_config = ConfigDict(extra="forbid")

    ac_freq: PositiveStrictInt | None = Field(
        default=None,
        description="selective_layer: checkpoint every ac_freq-th block counting from 1 (2: blocks 1, 3, 5, ...).",
    )
    save_ops_keys: list[Literal[SAVEABLE_OPS]] | None = Field(  # type: ignore[valid-type]
        default=None,
        description="selective_op: ops whose outputs are kept (every other matmul); the rest is recomputed.",
    )


class ActivationCheckpointedModelConfig(ComponentConfig):
    """Recompute the activations of transformer blocks in backward instead of storing them (apply before FSDP)."""

    model: ComponentRef["model"] = Field(description="The model whose blocks are checkpointed.")
    ac_variant: ActivationCheckpointingVariant = Field(
        default=ActivationCheckpointingVariant.full_activation_checkpointing,
        description="Every block (full), every ac_freq-th block (selective_layer), or every block keeping the "
        "outputs of chosen ops (selective_op).",
    )
    layers_fqn: str = Field(description="Dotted name of the ModuleDict/ModuleList of blocks (e.g. `transformer.h`).")
    ac_fun_params: ActivationCheckpointingParams = Field(
        default_factory=ActivationCheckpointingParams, description="Parameters of the chosen variant."
    )

    @model_validator(mode="after")
    def _params_fit_the_variant(self) -> "ActivationCheckpointedModelConfig":
        variant, params = self.ac_variant, self.ac_fun_params
        if variant == ActivationCheckpointingVariant.selective_layer_activation_checkpointing and params.ac_freq is None:
            raise ValueError("ac_variant selective_layer_activation_checkpointing needs ac_fun_params.ac_freq")
        if variant == ActivationCheckpointingVariant.selective_op_activation_checkpointing and not params.save_ops_keys:
            raise ValueError(
                "ac_variant selective_op_activation_checkpointing needs ac_fun_params.save_ops_keys, some of: "
                + ", ".join(SAVEABLE_OPS)
            )
        return self
