"""Config of ``model/fsdp1_wrapped`` and ``model/fsdp_wrapped`` (torch-free)."""

from __future__ import annotations

from pydantic import model_validator

from modalities.registry.types import ComponentConfig, ComponentRef, Field
from modalities.training.configs.fsdp1_common import (
    FSDP1_NOTE,
    SHARDING_DOC,
    FSDP1MixedPrecision,
    ShardingStrategy,
    note_fsdp1,
)
from modalities.training.configs.mixed_precision import MixedPrecisionSettings


class FSDP1WrappedModelConfig(ComponentConfig):
    """The reference's FSDP1 sharding (`fsdp1_wrapped`, formerly `fsdp_wrapped`). """ + FSDP1_NOTE

    model: ComponentRef["model"] = Field(description="The model to shard.")
    sync_module_states: bool = Field(
        default=True, description="Accepted for compatibility; FSDP2 shards from rank-identical weights."
    )
    mixed_precision_settings: FSDP1MixedPrecision | MixedPrecisionSettings = Field(
        default=FSDP1MixedPrecision.FP_32,
        description="An FSDP1 policy name (FP_32, BF_16, BF_16_WORKING, MIXED_PRECISION_MEGATRON, ...) or "
        "{param_dtype, reduce_dtype}.",
    )
    sharding_strategy: ShardingStrategy = Field(default=ShardingStrategy.FULL_SHARD, description=SHARDING_DOC)
    block_names: list[str] = Field(min_length=1, description="Class names of the blocks each sharded on its own.")

    @model_validator(mode="after")
    def _say_how(self):
        note_fsdp1(self.sharding_strategy, self.mixed_precision_settings)
        return self
