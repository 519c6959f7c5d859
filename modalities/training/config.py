"""Configs of the training components and of the `settings` block of a training run (torch-free)."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from modalities.registry.types import (
    ComponentConfig,
    ComponentRef,
    Field,
    PositiveStrictInt,
    StrictInt,
    empty_list,
    note_config,
    warn_config,
)


class PrecisionEnum(str, Enum):
    FP_32 = "FP_32"
    FP_16 = "FP_16"
    BF_16 = "BF_16"


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


class ParallelDegreeConfig(ComponentConfig):
    """The product of the sizes of some parallelism dimensions of a device mesh (e.g. the data-parallel degree)."""

    device_mesh: ComponentRef["device_mesh"] = Field(description="The device mesh to read.")
    parallelism_methods: list[Literal["dp_shard", "dp_replicate", "tp", "pp", "cp", "ep"]] = Field(
        description="Dimensions whose sizes are multiplied; a dimension absent from the mesh counts as 1."
    )


class RawAppStateConfig(ComponentConfig):
    """The state a checkpoint holds: model, optimizer and (optionally) learning-rate scheduler."""

    model: ComponentRef["model"] = Field(description="The model being trained (usually the initialized FSDP model).")
    optimizer: ComponentRef["optimizer"] = Field(description="The optimizer over the model's parameters.")
    lr_scheduler: ComponentRef["scheduler"] | None = Field(default=None, description="The learning-rate scheduler.")


class MixedPrecisionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    param_dtype: PrecisionEnum = Field(
        default=PrecisionEnum.FP_32, description="Dtype parameters are cast to for forward and backward."
    )
    reduce_dtype: PrecisionEnum = Field(
        default=PrecisionEnum.FP_32, description="Dtype gradients are reduced in across ranks."
    )


class FSDP2WrappedModelConfig(ComponentConfig):
    """A model sharded with FSDP2 `fully_shard`: once per block, then at the root."""

    model: ComponentRef["model"] = Field(description="The model to shard (may live on the meta device).")
    device_mesh: ComponentRef["device_mesh"] = Field(description="The mesh the model is sharded over.")
    block_names: list[str] = Field(
        min_length=1, description="Class names of the blocks each sharded on its own (e.g. `[GPT2Block]`)."
    )
    mixed_precision_settings: MixedPrecisionSettings = Field(
        default_factory=MixedPrecisionSettings, description="Parameter and gradient-reduction dtypes."
    )
    reshard_after_forward: bool = Field(
        default=True, description="Free gathered parameters after forward (less memory, one more all-gather)."
    )
    layers_per_fsdp_unit: PositiveStrictInt = Field(
        default=1, description="Consecutive blocks sharded as one unit (gathered together)."
    )


class EPWrappedModelConfig(ComponentConfig):
    """Expert parallelism of a model/moe: each block's experts split over the mesh's expert-parallel ranks, every
    token sent to the rank of its expert and back (all-to-all). Wrap the result with fsdp2_wrapped, which shards
    the experts over the data-parallel ranks that hold the same ones."""

    model: ComponentRef["model"] = Field(description="The model/moe (or its pipeline parts), before TP and FSDP2.")
    device_mesh: ComponentRef["device_mesh"] = Field(
        description="The mesh: its `ep` dimension (device_mesh.config.expert_parallel_degree), or the dimension "
        "ep_mesh_dim_name names."
    )
    block_names: list[str] = Field(
        min_length=1, description="Class names of the blocks holding experts (`[TransformerBlock]`)."
    )
    ep_mesh_dim_name: str | None = Field(
        default=None,
        description="The reference's older spelling: the mesh dimension the experts are split over, e.g. `tp` in a "
        "mesh without tensor parallelism; its ranks then read their own data and average their gradients like "
        "data-parallel ranks. Leave it out for the `ep` dimension of expert_parallel_degree.",
    )
    mixed_precision_settings: MixedPrecisionSettings | None = Field(
        default=None,
        description="Accepted as in the reference. The experts are cast by model/fsdp2_wrapped's mixed-precision "
        "policy, like every other parameter (this setting must not contradict it).",
    )


class ShardingStrategy(str, Enum):
    FULL_SHARD = "FULL_SHARD"
    SHARD_GRAD_OP = "SHARD_GRAD_OP"
    HYBRID_SHARD = "HYBRID_SHARD"
    _HYBRID_SHARD_ZERO2 = "_HYBRID_SHARD_ZERO2"
    NO_SHARD = "NO_SHARD"


class FSDP1MixedPrecision(str, Enum):
    """The reference's FSDP1 mixed-precision policies: (parameter dtype, reduction dtype)."""

    FP_16 = "FP_16"  # (fp16, fp16)
    BF_16 = "BF_16"  # (bf16, bf16)
    BF_16_WORKING = "BF_16_WORKING"  # (fp32, bf16)
    FP_32 = "FP_32"  # (fp32, fp32)
    MIXED_PRECISION_MEGATRON = "MIXED_PRECISION_MEGATRON"  # (bf16, fp32)
    NO_MIXED_PRECISION = "NO_MIXED_PRECISION"  # (fp32, fp32)


_FSDP1_NOTE = (
    "Carried out with FSDP2 (fully_shard) on a data-parallel mesh derived from sharding_strategy; see "
    "docs/compatibility.md."
)
_SHARDING = (
    "FULL_SHARD (shard, free after forward), SHARD_GRAD_OP (keep until backward), HYBRID_SHARD / "
    "_HYBRID_SHARD_ZERO2 (shard within a node, replicate across nodes), NO_SHARD (replicate)."
)


_FSDP1_MESH = {
    "FULL_SHARD": "sharded over all ranks, parameters freed after forward",
    "SHARD_GRAD_OP": "sharded over all ranks, parameters kept from forward to backward",
    "HYBRID_SHARD": "sharded within a node, replicated across nodes",
    "_HYBRID_SHARD_ZERO2": "sharded within a node, replicated across nodes, parameters kept until backward",
    "NO_SHARD": "replicated on every rank",
}
# FSDP1 mixed-precision policy name -> (param_dtype, reduce_dtype) (the reference's MixedPrecisionSettings).
FSDP1_PRECISION = {
    "FP_16": ("FP_16", "FP_16"),
    "BF_16": ("BF_16", "BF_16"),
    "BF_16_WORKING": ("FP_32", "BF_16"),
    "FP_32": ("FP_32", "FP_32"),
    "MIXED_PRECISION_MEGATRON": ("BF_16", "FP_32"),
    "NO_MIXED_PRECISION": ("FP_32", "FP_32"),
}


def _note_fsdp1(sharding_strategy, mixed_precision) -> None:
    """validate's note of how an FSDP1 component is carried out."""
    if isinstance(mixed_precision, FSDP1MixedPrecision):
        param, reduce = FSDP1_PRECISION[mixed_precision.value]
    else:
        param, reduce = mixed_precision.param_dtype.value, mixed_precision.reduce_dtype.value
    param, reduce = (name.replace("_", "").lower() for name in (param, reduce))  # FP_32 -> fp32
    note_config(
        f"FSDP1 is carried out with FSDP2 (fully_shard): {sharding_strategy.value} -> "
        f"{_FSDP1_MESH[sharding_strategy.value]}; parameters in {param}, gradients reduced in {reduce} "
        "(see docs/compatibility.md)"
    )


class FSDP1WrappedModelConfig(ComponentConfig):
    """The reference's FSDP1 sharding (`fsdp1_wrapped`, formerly `fsdp_wrapped`). """ + _FSDP1_NOTE

    model: ComponentRef["model"] = Field(description="The model to shard.")
    sync_module_states: bool = Field(
        default=True, description="Accepted for compatibility; FSDP2 shards from rank-identical weights."
    )
    mixed_precision_settings: FSDP1MixedPrecision | MixedPrecisionSettings = Field(
        default=FSDP1MixedPrecision.FP_32,
        description="An FSDP1 policy name (FP_32, BF_16, BF_16_WORKING, MIXED_PRECISION_MEGATRON, ...) or "
        "{param_dtype, reduce_dtype}.",
    )
    sharding_strategy: ShardingStrategy = Field(default=ShardingStrategy.FULL_SHARD, description=_SHARDING)
    block_names: list[str] = Field(min_length=1, description="Class names of the blocks each sharded on its own.")

    @model_validator(mode="after")
    def _say_how(self):
        _note_fsdp1(self.sharding_strategy, self.mixed_precision_settings)
        return self


FSDPWrappedModelConfig = FSDP1WrappedModelConfig


class FSDP1ActivationCheckpointedModelConfig(ComponentConfig):
    """Activation checkpointing of the named module classes of an (FSDP1-spelled) sharded model."""

    model: ComponentRef["model"] = Field(description="The sharded model.")
    activation_checkpointing_modules: list[str] = Field(
        default_factory=empty_list, description="Class names of the modules to checkpoint (e.g. `[GPT2Block]`)."
    )


class FSDP1CheckpointedModelConfig(ComponentConfig):
    """A model with weights loaded from a full state dict file (the reference's FSDP1 `.bin`)."""

    checkpoint_loading: ComponentRef["checkpoint_loading"] = Field(
        description="checkpoint_loading/fsdp1 (loads, then shards) or checkpoint_loading/torch (a plain model)."
    )
    checkpoint_path: str = Field(description="The model `.bin`/`.pt` file.")
    model: ComponentRef["model"] = Field(description="The model to load into.")


class FSDP1CheckpointedOptimizerConfig(ComponentConfig):
    """An optimizer with its state loaded from a full optimizer state dict file (the reference's FSDP1 `.bin`)."""

    checkpoint_loading: ComponentRef["checkpoint_loading"] = Field(description="checkpoint_loading/fsdp1.")
    checkpoint_path: str = Field(description="The optimizer `.bin` file.")
    wrapped_model: ComponentRef["model"] = Field(description="The sharded model the optimizer works on.")
    optimizer: ComponentRef["optimizer"] = Field(description="The optimizer to load into.")


class FSDP1CheckpointLoadingConfig(ComponentConfig):
    """Loads a full model state dict file into a plain model, then shards it (the reference's FSDP1 loading)."""

    global_rank: StrictInt = Field(ge=0, description="This process's rank (`${settings.cuda_env.global_rank}`).")
    block_names: list[str] = Field(min_length=1, description="Class names of the blocks each sharded on its own.")
    mixed_precision_settings: FSDP1MixedPrecision = Field(description="The FSDP1 mixed-precision policy.")
    sharding_strategy: ShardingStrategy = Field(description=_SHARDING)

    @model_validator(mode="after")
    def _say_how(self):
        _note_fsdp1(self.sharding_strategy, self.mixed_precision_settings)
        return self


class DCPAppStateConfig(ComponentConfig):
    """An app state loaded from a DCP checkpoint folder when built (the reference's warm start)."""

    raw_app_state: ComponentRef["app_state"] = Field(description="The app state (model, optimizer, scheduler).")
    checkpoint_dir_path: str = Field(description="The checkpoint folder (ours or the reference's).")


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


class CompiledModelConfig(ComponentConfig):
    """torch.compile each block in place (state-dict names unchanged, so checkpoints stay compatible)."""

    model: ComponentRef["model"] = Field(description="The model whose blocks are compiled.")
    block_names: list[str] = Field(
        description="Class names of the blocks to compile one by one; an empty list leaves the model as it is."
    )
    fullgraph: bool = Field(default=True, description="Require each block to compile into a single graph.")
    debug: bool | None = Field(default=False, description="Trace the compilation (inductor's trace.enabled).")
    backend: str = Field(default="inductor", description="torch.compile backend (`inductor`, `aot_eager`, `eager`).")

    @model_validator(mode="after")
    def _warn_when_nothing_is_compiled(self) -> "CompiledModelConfig":
        if not self.block_names:
            warn_config("block_names is empty: the model is not compiled (as in the reference)", field="block_names")
        return self


class CheckpointedModelConfig(ComponentConfig):
    """A model with weights loaded from a checkpoint."""

    model: ComponentRef["model"] = Field(description="The model to load into (sharded for `fsdp`, plain for `torch`).")
    checkpoint_loading: ComponentRef["checkpoint_loading"] = Field(description="How the checkpoint is read.")
    checkpoint_path: str = Field(description="A checkpoint folder (fsdp/dcp) or a `.pt` file (torch).")


class CheckpointedOptimizerConfig(ComponentConfig):
    """An optimizer with its state loaded from a checkpoint folder."""

    optimizer: ComponentRef["optimizer"] = Field(description="The optimizer to load into.")
    wrapped_model: ComponentRef["model"] = Field(description="The model the optimizer works on.")
    checkpoint_loading: ComponentRef["checkpoint_loading"] = Field(description="How the checkpoint is read.")
    checkpoint_path: str = Field(description="The checkpoint folder.")
