"""`device_mesh/default` and `number_conversion/parallel_degree`."""

from __future__ import annotations

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
) -> DeviceMesh:
    unsupported = {
        "tensor_parallel_degree": tensor_parallel_degree,
        "pipeline_parallel_degree": pipeline_parallel_degree,
        "context_parallel_degree": context_parallel_degree,
    }
    for name, degree in unsupported.items():
        if degree != 1:
            raise TrainingSetupError(f"device_mesh.config.{name} is {degree}; only data parallelism is supported, set it to 1")
    if enable_loss_parallel:
        raise TrainingSetupError("device_mesh.config.enable_loss_parallel needs tensor parallelism; set it to false")
    ensure_process_group(device_type)
    actual_world_size = dist.get_world_size()
    if world_size != actual_world_size:
        raise TrainingSetupError(
            f"device_mesh.config.world_size is {world_size} but {actual_world_size} processes were launched; "
            "use ${settings.cuda_env.world_size} or launch that many processes"
        )
    shard = data_parallel_shard_degree
    if shard == -1:
        if world_size % data_parallel_replicate_degree:
            raise TrainingSetupError(
                f"world size {world_size} is not divisible by data_parallel_replicate_degree {data_parallel_replicate_degree}"
            )
        shard = world_size // data_parallel_replicate_degree
    if shard < 1 or shard * data_parallel_replicate_degree != world_size:
        raise TrainingSetupError(
            f"data_parallel_replicate_degree ({data_parallel_replicate_degree}) x data_parallel_shard_degree "
            f"({data_parallel_shard_degree}) must equal the world size ({world_size}); -1 fills in the shard degree"
        )
    if data_parallel_replicate_degree == 1:
        return init_device_mesh(device_type, (shard,), mesh_dim_names=("dp_shard",))
    return init_device_mesh(
        device_type, (data_parallel_replicate_degree, shard), mesh_dim_names=("dp_replicate", "dp_shard")
    )


def get_parallel_degree(device_mesh: DeviceMesh, parallelism_methods: list[str]) -> int:
    names = device_mesh.mesh_dim_names or ()
    degree = 1
    for method in parallelism_methods:
        if method in names:
            degree *= device_mesh.size(names.index(method))
    return degree
