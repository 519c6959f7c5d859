"""What the configs of the reference's FSDP1 components share: its sharding strategies and mixed-precision
policies, and validate's note of how FSDP2 carries them out (torch-free)."""

from __future__ import annotations

from enum import Enum

from modalities.registry.types import note_config


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


FSDP1_NOTE = (
    "Carried out with FSDP2 (fully_shard) on a data-parallel mesh derived from sharding_strategy; see "
    "docs/compatibility.md."
)
SHARDING_DOC = (
    "FULL_SHARD (shard, free after forward), SHARD_GRAD_OP (keep until backward), HYBRID_SHARD / "
    "_HYBRID_SHARD_ZERO2 (shard within a node, replicate across nodes), NO_SHARD (replicate)."
)


FSDP1_MESH = {
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


def note_fsdp1(sharding_strategy, mixed_precision) -> None:
    """validate's note of how an FSDP1 component is carried out."""
    if isinstance(mixed_precision, FSDP1MixedPrecision):
        param, reduce = FSDP1_PRECISION[mixed_precision.value]
    else:
        param, reduce = mixed_precision.param_dtype.value, mixed_precision.reduce_dtype.value
    param, reduce = (name.replace("_", "").lower() for name in (param, reduce))  # FP_32 -> fp32
    note_config(
        f"FSDP1 is carried out with FSDP2 (fully_shard): {sharding_strategy.value} -> "
        f"{FSDP1_MESH[sharding_strategy.value]}; parameters in {param}, gradients reduced in {reduce} "
        "(see docs/compatibility.md)"
    )
