"""`model/ep_wrapped`: expert parallelism for `model/moe`.

Each MoE block's E experts are split over the ep ranks (Shard(0) of the stacked weights: rank r holds experts
r*E/ep .. (r+1)*E/ep - 1). A rank routes its own tokens (routing, capacity and auxiliary losses are local, as
without expert parallelism), then per block:

    dispatch: the counts per expert go to every rank (all-to-all), then the sorted tokens, each segment to the
              rank holding its expert (all-to-all with uneven splits)
    compute:  the received rows regrouped by local expert, the local experts run on them (experts.py)
    combine:  the outputs back to the ranks the tokens came from (the reverse all-to-all)

Both all-to-alls carry gradients (their backward is the reverse exchange).

The ep ranks are data-parallel ranks (the mesh's ``ep`` dimension is carved out of dp_shard, see
training/device_mesh.py), so the experts' gradients sum every data-parallel rank's tokens: model/fsdp2_wrapped
shards the experts over the ranks holding the same ones (dp_shard / ep, HSDP: with dp_replicate) and divides
their gradients by the data-parallel degree, as it averages every other gradient (``fsdp_unit`` below).

The reference's older spelling names the mesh dimension (``ep_mesh_dim_name``, e.g. ``tp`` in a mesh without
tensor parallelism): its ranks then are data-parallel ranks too; the mesh remembers it (``ep_borrowed_dim``) so
that FSDP2 averages the other parameters over them and the run counts their tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import DTensor, Shard

from modalities.models.model_parts import for_each_part
from modalities.models.moe.experts import GroupedExperts


class ExpertParallelError(ValueError):
    pass


@dataclass(frozen=True)
class FSDPUnit:
    """A module model/fsdp2_wrapped shards on its own: over ``mesh``, gradients divided by ``gradient_divide_factor``
    (instead of the mesh's size)."""

    mesh: DeviceMesh
    gradient_divide_factor: float


def _all_to_all(x: torch.Tensor, output_splits: list[int], input_splits: list[int], group) -> torch.Tensor:
    """Rows of ``x`` to the group's ranks (``input_splits`` rows each), ``output_splits`` rows from each; its
    backward sends the gradients the reverse way."""
    from torch.distributed._functional_collectives import all_to_all_single_autograd, wait_tensor

    return wait_tensor(all_to_all_single_autograd(x.contiguous(), output_splits, input_splits, group))


class ExpertParallel:
    """Sends a block's sorted tokens to the ranks of their experts and the outputs back (see the module text)."""

    def __init__(self, ep_mesh: DeviceMesh):
        self.group, self.size, self.rank = ep_mesh.get_group(), ep_mesh.size(), ep_mesh.get_local_rank()

    def run(self, x_sorted: torch.Tensor, counts: torch.Tensor,
            compute: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        local = counts.numel() // self.size
        with torch.no_grad():
            received = torch.empty_like(counts)
            dist.all_to_all_single(received, counts, group=self.group)  # [source rank, local expert] counts
            sent_rows = counts.view(self.size, local).sum(dim=1).tolist()
            received_rows = received.view(self.size, local).sum(dim=1).tolist()
            # the received rows come by source rank, then expert: sort them by local expert (stably)
            experts_of_rows = torch.arange(local, device=counts.device).repeat(self.size).repeat_interleave(received)
            order = torch.argsort(experts_of_rows, stable=True)
            back = torch.argsort(order)
        x_received = _all_to_all(x_sorted, received_rows, sent_rows, self.group)
        y = compute(x_received[order], received.view(self.size, local).sum(dim=0))
        return _all_to_all(y[back], sent_rows, received_rows, self.group)


def _expert_meshes(device_mesh: DeviceMesh, ep_mesh_dim_name: str | None) -> tuple[DeviceMesh, DeviceMesh, int] | None:
    """(the mesh the experts are split over, the mesh their FSDP2 shards span, the data-parallel degree), or None
    when the experts are not split (expert_parallel_degree 1)."""
    names = device_mesh.mesh_dim_names or ()
    data_dims = [name for name in ("dp_replicate", "dp_shard") if name in names]
    data_degree = 1
    for name in data_dims:
        data_degree *= device_mesh[name].size()
    if ep_mesh_dim_name in (None, "ep"):
        expert_mesh = getattr(device_mesh, "expert_mesh", None)
        if expert_mesh is None:
            return None
        if "cp" in names:
            raise ExpertParallelError(
                "expert parallelism does not combine with context parallelism yet: the experts' gradients would not "
                "be averaged over the ranks sharing a sequence; set expert_parallel_degree or context_parallel_degree "
                "to 1")
        replicas = ("dp_replicate", "dp_shard_mod_ep") if "dp_replicate" in names else ("dp_shard_mod_ep",)
        return expert_mesh["ep"], expert_mesh[replicas], data_degree
    if ep_mesh_dim_name not in names:
        raise ExpertParallelError(f"ep_mesh_dim_name '{ep_mesh_dim_name}' is not a dimension of the device mesh "
                                  f"{names}")
    if ep_mesh_dim_name in ("dp_replicate", "dp_shard", "pp", "cp") or "cp" in names or "dp_replicate" in names:
        raise ExpertParallelError(
            f"ep_mesh_dim_name '{ep_mesh_dim_name}' in a mesh {names}: the older spelling splits the experts over a "
            "dimension no other parallelism uses (e.g. tp without model/qwen_tp); use "
            "device_mesh.config.expert_parallel_degree instead"
        )
    _borrow(device_mesh, ep_mesh_dim_name)
    return device_mesh[ep_mesh_dim_name], device_mesh["dp_shard"], data_degree * device_mesh[ep_mesh_dim_name].size()


def _borrow(device_mesh: DeviceMesh, name: str) -> None:
    """Mark ``name`` as data-parallel: FSDP2 then shards the other parameters over dp_shard x it (ep_data_mesh)."""
    if getattr(device_mesh, "ep_borrowed_dim", None) == name:
        return
    device_mesh.ep_borrowed_dim = name
    device_mesh.ep_data_mesh = device_mesh["dp_shard", name]._flatten(f"dp_shard_{name}")


def _split_experts(experts: GroupedExperts, ep_mesh: DeviceMesh) -> None:
    size, rank = ep_mesh.size(), ep_mesh.get_local_rank()
    if experts.num_experts % size:
        raise ExpertParallelError(f"{experts.num_experts} experts do not split evenly over {size} expert-parallel "
                                  "ranks; choose an expert_parallel_degree that divides moe_num_experts")
    local = experts.num_experts // size
    for name in ("w1", "w2", "w3"):
        full = getattr(experts, name)
        # every rank built the same weights: each keeps its slice, no communication
        shard = DTensor.from_local(full.detach()[rank * local : (rank + 1) * local], ep_mesh, [Shard(0)],
                                   run_check=False)
        setattr(experts, name, nn.Parameter(shard, requires_grad=full.requires_grad))
    experts.expert_parallel = ExpertParallel(ep_mesh)


@for_each_part
def get_ep_wrapped_model(model: nn.Module, device_mesh: DeviceMesh, block_names: list[str],
                         ep_mesh_dim_name: str | None = None, mixed_precision_settings=None) -> nn.Module:
    """Split the experts of the blocks named ``block_names`` over the expert-parallel ranks, in place; returns the
    model (unchanged with expert_parallel_degree 1)."""
    meshes = _expert_meshes(device_mesh, ep_mesh_dim_name)
    blocks = [m for m in model.modules() if type(m).__name__ in set(block_names)]
    if not blocks and not getattr(model, "pipeline_stage_modules", None):
        names = sorted({type(m).__name__ for m in model.modules()})
        raise ExpertParallelError(f"block_names {block_names} match no module of {type(model).__name__}; its "
                                  f"module classes are: {', '.join(names)}")
    if meshes is None:
        return model
    ep_mesh, replica_mesh, data_degree = meshes
    for block in blocks:
        experts = next((m for m in block.modules() if isinstance(m, GroupedExperts)), None)
        if experts is None:
            raise ExpertParallelError(f"{type(block).__name__} holds no GroupedExperts: ep_wrapped splits the experts "
                                      "of model/moe blocks")
        if experts.expert_parallel is None:
            _split_experts(experts, ep_mesh)
            experts.fsdp_unit = FSDPUnit(replica_mesh, float(data_degree))
    return model
