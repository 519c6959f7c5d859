"""`device_mesh/default` and `number_conversion/parallel_degree`."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh

from modalities.training.distributed import TrainingSetupError, ensure_process_group


def get_device_mesh(
    device_type: str,
    world_size: int,
    data_parallel_replicate_degree: int = 1,
    data_parallel_shard_degree: int = -1,
    tensor_parallel_degree: int = 1,
    pipeline_parallel_degree: int = 1,
    context_parallel_degree: int = 1,
    enable_loss_parallel: bool = False,
    expert_parallel_degree: int = 1,
) -> DeviceMesh:
    if enable_loss_parallel and tensor_parallel_degree == 1:
        raise TrainingSetupError("device_mesh.config.enable_loss_parallel needs tensor_parallel_degree > 1 (the head's "
                                 "vocabulary is split over the tp ranks)")
    ensure_process_group(device_type)
    actual_world_size = dist.get_world_size()
    if world_size != actual_world_size:
        raise TrainingSetupError(
            f"device_mesh.config.world_size is {world_size} but {actual_world_size} processes were launched; "
            "use ${settings.cuda_env.world_size} or launch that many processes"
        )
    pp, replicate, tp = pipeline_parallel_degree, data_parallel_replicate_degree, tensor_parallel_degree
    cp, shard = context_parallel_degree, data_parallel_shard_degree
    others = pp * replicate * cp * tp
    if shard == -1:
        if world_size % others:
            raise TrainingSetupError(
                f"world size {world_size} is not divisible by pipeline_parallel_degree {pp} x "
                f"data_parallel_replicate_degree {replicate} x context_parallel_degree {cp} x "
                f"tensor_parallel_degree {tp}"
            )
        shard = world_size // others
    if shard < 1 or shard * others != world_size:
        raise TrainingSetupError(
            f"pipeline_parallel_degree ({pp}) x data_parallel_replicate_degree ({replicate}) x "
            f"data_parallel_shard_degree ({data_parallel_shard_degree}) x context_parallel_degree ({cp}) x "
            f"tensor_parallel_degree ({tp}) must equal the world size ({world_size}); -1 fills in the shard degree"
        )
    if shard % expert_parallel_degree:
        raise TrainingSetupError(
            f"expert_parallel_degree {expert_parallel_degree} must divide data_parallel_shard_degree {shard}: the "
            "expert-parallel ranks are data-parallel ranks that split the experts between them"
        )
    # The reference's (and torchtitan's) order and names: dimensions of size 1 left out, except dp_shard.
    sizes = (("pp", pp), ("dp_replicate", replicate), ("dp_shard", shard), ("cp", cp), ("tp", tp))
    dims = [(name, size) for name, size in sizes if size > 1 or name == "dp_shard"]
    mesh = init_device_mesh(device_type, tuple(size for _, size in dims), mesh_dim_names=tuple(n for n, _ in dims))
    # FSDP2 shards the model over dp_shard x cp: context-parallel peers hold the same model and their gradients
    # are averaged with the data-parallel ones (torchtitan's layout and name). Kept on the mesh, as torch asks
    # (slicing a flattened dimension from the mesh is going away).
    mesh.dp_shard_cp = mesh["dp_shard", "cp"]._flatten("dp_shard_cp") if cp > 1 else None
    # Read by model/gpt2_tp (the head keeps its vocabulary shard) and the training loop (the loss is computed on
    # the shards): one setting on the mesh, as the reference places it.
    mesh.loss_parallel = bool(enable_loss_parallel)
    # Expert parallelism is carved out of dp_shard (the reference's and torchtitan's layout): dp_shard =
    # dp_shard_mod_ep x ep, ep the inner (consecutive ranks), so each rank still reads its own data and the
    # all-to-all stays among neighbours. The experts live on this second view of the same ranks (model/ep_wrapped);
    # everything else keeps using dp_shard.
    mesh.expert_mesh = (
        mesh._unflatten("dp_shard", (shard // expert_parallel_degree, expert_parallel_degree), ("dp_shard_mod_ep", "ep"))
        if expert_parallel_degree > 1 else None
    )
    return mesh


def data_parallel_degree(device_mesh: DeviceMesh | None) -> int:
    """Ranks that read different data: the product of the data-parallel dimensions (the world size without a
    mesh), with a dimension the experts borrowed in the reference's older spelling (model/ep_wrapped with
    ep_mesh_dim_name, e.g. tp without tensor parallelism), whose ranks read their own data."""
    if device_mesh is None or not device_mesh.mesh_dim_names:
        return dist.get_world_size() if dist.is_initialized() else 1
    borrowed = getattr(device_mesh, "ep_borrowed_dim", None)
    return get_parallel_degree(device_mesh, ["dp_replicate", "dp_shard"] + ([borrowed] if borrowed else []))


def get_parallel_degree(device_mesh: DeviceMesh, parallelism_methods: list[str]) -> int:
    """The product of the sizes of these dimensions; ``ep`` is the expert-parallel one (a part of dp_shard)."""
    names = device_mesh.mesh_dim_names or ()
    expert_mesh = getattr(device_mesh, "expert_mesh", None)
    degree = 1
    for method in parallelism_methods:
        if method in names:
            degree *= device_mesh.size(names.index(method))
        elif method == "ep" and expert_mesh is not None:
            degree *= expert_mesh["ep"].size()
    return degree
