"""Config of ``device_mesh/default`` (torch-free)."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from modalities.registry.types import ComponentConfig, Field, PositiveStrictInt


class DeviceMeshConfig(ComponentConfig):
    """The device mesh of the run: pipeline (pp) x data parallelism (replicate x shard) x context parallelism (cp) x
    tensor parallelism (tp); expert parallelism (ep) splits dp_shard."""

    device_type: Literal["cuda", "cpu"] = Field(
        description="Device of every rank: `cuda` (one GPU per rank, NCCL) or `cpu` (gloo)."
    )
    data_parallel_replicate_degree: PositiveStrictInt = Field(
        default=1, description="Replicas of the sharded model (HSDP); 1 for plain FSDP."
    )
    data_parallel_shard_degree: int = Field(
        default=-1, description="Ranks one model is sharded over; -1 takes what the world size leaves."
    )
    tensor_parallel_degree: PositiveStrictInt = Field(
        default=1, description="Ranks a model's layers are split over (model/gpt2_tp); the mesh's `tp` dimension."
    )
    pipeline_parallel_degree: PositiveStrictInt = Field(
        default=1, description="Ranks the model's stages are spread over (pipeline/staged); the mesh's `pp` dimension."
    )
    context_parallel_degree: PositiveStrictInt = Field(
        default=1, description="Ranks each sequence is split over (ring attention, model/gpt2 with pytorch_flash "
        "attention under model/fsdp2_wrapped); the mesh's `cp` dimension."
    )
    enable_loss_parallel: bool = Field(
        default=False, description="With tensor parallelism: the head keeps its vocabulary shard and the loss is "
        "computed on the shards (torch's loss_parallel), so full logits are never gathered."
    )
    expert_parallel_degree: PositiveStrictInt = Field(
        default=1, description="Ranks the experts of each MoE block are split over (model/ep_wrapped): the mesh's "
        "`ep` dimension, carved out of dp_shard (which it must divide): these ranks still read their own data and "
        "send each token to the rank holding its expert."
    )
    world_size: PositiveStrictInt = Field(description="Number of ranks; must equal the launched world size.")

    @field_validator("enable_loss_parallel")
    @classmethod
    def _loss_parallel_needs_tensor_parallel(cls, enabled: bool, info) -> bool:
        if enabled and info.data.get("tensor_parallel_degree", 1) == 1:
            raise ValueError("enable_loss_parallel needs tensor_parallel_degree > 1: it computes the loss on the "
                             "vocabulary shards of the tp ranks")
        return enabled
