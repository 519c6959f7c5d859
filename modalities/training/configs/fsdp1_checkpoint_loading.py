"""Config of ``checkpoint_loading/fsdp1`` (torch-free)."""

from __future__ import annotations

from pydantic import model_validator

from modalities.registry.types import ComponentConfig, Field, StrictInt
from modalities.training.configs.fsdp1_common import SHARDING_DOC, FSDP1MixedPrecision, ShardingStrategy, note_fsdp1


class FSDP1CheckpointLoadingConfig(ComponentConfig):
    """Loads a full model state dict file into a plain model, then shards it (the reference's FSDP1 loading)."""

    global_rank: StrictInt = Field(ge=0, description="This process's rank (`${settings.cuda_env.global_rank}`).")
    block_names: list[str] = Field(min_length=1, description="Class names of the blocks each sharded on its own.")
    mixed_precision_settings: FSDP1MixedPrecision = Field(description="The FSDP1 mixed-precision policy.")
    sharding_strategy: ShardingStrategy = Field(description=SHARDING_DOC)

    @model_validator(mode="after")
    def _say_how(self):
        note_fsdp1(self.sharding_strategy, self.mixed_precision_settings)
        return self
