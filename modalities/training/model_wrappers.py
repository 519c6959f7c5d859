"""Model wrappers: FSDP2 sharding, activation checkpointing, per-block torch.compile, loading from checkpoints."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from modalities.models.model_parts import for_each_part, is_pipeline_part
from modalities.training.distributed import TrainingSetupError

_DTYPES = {"FP_32": torch.float32, "FP_16": torch.float16, "BF_16": torch.bfloat16}


def _dtype(value) -> torch.dtype:
    return _DTYPES[getattr(value, "value", value)]


def _class_names(module: nn.Module) -> set[str]:
    """The module's class names, including the ones FSDP2 (``FSDP<Block>``) and activation checkpointing hide."""
    inner = getattr(module, "_checkpoint_wrapped_module", None)  # an activation-checkpointed block
    return {cls.__name__ for cls in type(inner if inner is not None else module).__mro__}


def find_blocks(model: nn.Module, block_names: list[str], allow_none: bool = False) -> list[nn.Module]:
    """The outermost modules whose class is named in block_names (a checkpoint wrapper counts as its block).
    ``allow_none``: a pipeline stage may hold no block (only the embeddings or the head)."""
    wanted = set(block_names)
    blocks: list[nn.Module] = []
    claimed: set[int] = set()
    for module in model.modules():
        if id(module) in claimed:
            continue
        if _class_names(module) & wanted:
            blocks.append(module)
            claimed.update(id(m) for m in module.modules())
    if not blocks and not allow_none:
        names = sorted({type(m).__name__ for m in model.modules()})
        raise TrainingSetupError(
            f"block_names {block_names} match no module of {type(model).__name__}; its module classes are: "
            + ", ".join(names)
        )
    return blocks


@for_each_part
def get_fsdp2_wrapped_model(
    model: nn.Module,
    device_mesh: DeviceMesh,
    block_names: list[str],
    mixed_precision_settings=None,
    reshard_after_forward: bool = True,
    layers_per_fsdp_unit: int = 1,
) -> nn.Module:
    param_dtype = _dtype(getattr(mixed_precision_settings, "param_dtype", "FP_32"))
    reduce_dtype = _dtype(getattr(mixed_precision_settings, "reduce_dtype", "FP_32"))
    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=reduce_dtype)
    mesh = _data_parallel_mesh(device_mesh)
    # Modules with a sharding of their own first (the experts of an expert-parallel block: sharded over the ranks
    # that hold the same experts, gradients divided by the data-parallel degree; models/moe/expert_parallel.py).
    for module in model.modules():
        unit = getattr(module, "fsdp_unit", None)
        if unit is not None:
            fully_shard(module, mesh=unit.mesh, mp_policy=policy, reshard_after_forward=reshard_after_forward)
            module.set_gradient_divide_factor(unit.gradient_divide_factor)
    blocks = find_blocks(model, block_names, allow_none=is_pipeline_part(model))
    # Consecutive blocks grouped into one FSDP unit: one all-gather per group instead of per block.
    for start in range(0, len(blocks), layers_per_fsdp_unit):
        group = blocks[start : start + layers_per_fsdp_unit]
        fully_shard(group if len(group) > 1 else group[0], mesh=mesh, mp_policy=policy,
                    reshard_after_forward=reshard_after_forward)
    # The root keeps its parameters gathered after forward: backward needs them right away.
    fully_shard(model, mesh=mesh, mp_policy=policy, reshard_after_forward=False)
    return model


def _data_parallel_mesh(device_mesh: DeviceMesh) -> DeviceMesh:
    """The mesh FSDP2 shards over: dp_shard (HSDP: dp_replicate x dp_shard), with context-parallel peers counted
    as shard ranks (they hold the same model and average their gradients too), and so are the ranks of a dimension
    the experts borrowed in the reference's older spelling (ep_wrapped's ep_mesh_dim_name)."""
    names = device_mesh.mesh_dim_names or ()
    borrowed = getattr(device_mesh, "ep_data_mesh", None)  # dp_shard x a dimension the experts split (older spelling)
    if borrowed is not None:
        return borrowed
    if "cp" not in names:
        return device_mesh[("dp_replicate", "dp_shard")] if "dp_replicate" in names else device_mesh["dp_shard"]
    flattened = getattr(device_mesh, "dp_shard_cp", None)
    if "dp_replicate" not in names and flattened is not None:
        return flattened
    with warnings.catch_warnings():
        # torch 2.13 still slices a flattened dimension together with another (dp_replicate x dp_shard_cp for
        # HSDP), with a warning that this is going away.
        warnings.filterwarnings("ignore", message="Slicing a flattened dim", category=UserWarning)
        return device_mesh[("dp_replicate", "dp_shard_cp")] if "dp_replicate" in names else device_mesh["dp_shard_cp"]


def _has_submodule(model: nn.Module, fqn: str) -> bool:
    try:
        model.get_submodule(fqn)
    except AttributeError:
        return False
    return True


def _get_submodule(model: nn.Module, fqn: str, field: str) -> nn.Module:
    try:
        return model.get_submodule(fqn)
    except AttributeError as e:
        raise TrainingSetupError(f"{field} '{fqn}' names no submodule of {type(model).__name__}: {e}") from None


@for_each_part
def get_activation_checkpointed_model(
    model: nn.Module, layers_fqn: str, ac_variant="full_activation_checkpointing", ac_fun_params=None
) -> nn.Module:
    """Wrap the blocks under ``layers_fqn`` in activation checkpointing, in place.

    full: every block. selective_layer: every ``ac_freq``-th block counting from 1 (ac_freq 2 checkpoints blocks
    1, 3, 5, ...), as the reference does. selective_op: every block, keeping the outputs of ``save_ops_keys``
    (every other matmul) and recomputing the rest. Unlike the reference, the recomputation replays the RNG
    state, so dropout masks and gradients equal those without checkpointing.
    """
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointImpl, checkpoint_wrapper

    if is_pipeline_part(model) and not _has_submodule(model, layers_fqn):
        return model  # a pipeline stage without blocks (embeddings or head only)
    layers = _get_submodule(model, layers_fqn, "layers_fqn")
    if not isinstance(layers, (nn.ModuleList, nn.ModuleDict)):
        raise TrainingSetupError(
            f"layers_fqn '{layers_fqn}' is a {type(layers).__name__}, not an nn.ModuleDict or nn.ModuleList of blocks"
        )
    variant = getattr(ac_variant, "value", ac_variant)
    names = [name for name, _ in layers.named_children()]
    # Counted as in the whole model: a pipeline stage holding blocks 3 and 4 checkpoints what the whole would.
    positions = [int(n) + 1 for n in names] if all(n.isdigit() for n in names) else range(1, len(names) + 1)
    for position, name in zip(positions, names):
        block = layers.get_submodule(name)
        if variant == "selective_layer_activation_checkpointing" and position % ac_fun_params.ac_freq:
            continue
        context = {}
        if variant == "selective_op_activation_checkpointing":
            context["context_fn"] = _selective_op_context(ac_fun_params.save_ops_keys)
        layers.register_module(name, checkpoint_wrapper(block, checkpoint_impl=CheckpointImpl.NO_REENTRANT, **context))
    return model


def _selective_op_context(save_ops_keys: list[str]):
    from collections import defaultdict

    from torch.utils.checkpoint import CheckpointPolicy, create_selective_checkpoint_contexts

    ops = torch.ops
    available = {
        "ops.aten.mm.default": ops.aten.mm.default,
        "ops.aten._scaled_dot_product_efficient_attention.default": ops.aten._scaled_dot_product_efficient_attention.default,
        "ops.aten._scaled_dot_product_flash_attention.default": ops.aten._scaled_dot_product_flash_attention.default,
        "ops._c10d_functional.reduce_scatter_tensor.default": ops._c10d_functional.reduce_scatter_tensor.default,
        "ops.aten.max.default": ops.aten.max.default,
    }
    to_save = {available[key] for key in save_ops_keys}

    def context_fn():
        mm_counts: dict[str, int] = defaultdict(int)

        def policy(ctx, func, *args, **kwargs):
            mode = "recompute" if ctx.is_recompute else "forward"
            if func == ops.aten.mm.default:
                mm_counts[mode] += 1
            # Keep every other matmul's output (the reference's and torchtitan's policy): half the memory of
            # keeping all, most of the saved compute.
            keep = func in to_save and not (func == ops.aten.mm.default and mm_counts[mode] % 2 == 0)
            return CheckpointPolicy.MUST_SAVE if keep else CheckpointPolicy.PREFER_RECOMPUTE

        return create_selective_checkpoint_contexts(policy)

    return context_fn


@for_each_part
def get_compiled_model(
    model: nn.Module, block_names: list[str], fullgraph: bool = True, debug: bool | None = False, backend: str = "inductor"
) -> nn.Module:
    if not block_names:
        return model
    options = {"trace.enabled": True} if debug and backend == "inductor" else None
    for block in find_blocks(model, block_names, allow_none=is_pipeline_part(model)):
        block.compile(fullgraph=fullgraph, backend=backend, options=options)
    return model


def get_checkpointed_model(checkpoint_loading, checkpoint_path: str, model: nn.Module) -> nn.Module:
    return checkpoint_loading.load_model_checkpoint(model, Path(checkpoint_path))


def get_checkpointed_optimizer(checkpoint_loading, checkpoint_path: str, wrapped_model: nn.Module, optimizer):
    return checkpoint_loading.load_optimizer_checkpoint(optimizer, wrapped_model, Path(checkpoint_path))

