"""Gradient clipping by total norm, for plain and FSDP2 (DTensor-sharded) gradients.

Every clipper has ``clip_gradients() -> Tensor``, returning the total norm of the gradients *before* clipping
(the value a training loop logs). Under FSDP2 each rank holds only shards of the gradients; the total norm is
the norm over the full gradients, so the shards' partial norms are reduced across the ranks that hold them
(sum of p-th powers for a p-norm, max for the max norm). Each gradient's mesh and placements say over which
dimensions its shards differ and over which they are copies (HSDP replicas, norms replicated over tensor-parallel
ranks), so that no copy is counted twice.

Where every gradient is sharded over meshes that span all ranks of its pipeline stage (the FSDP2 runs the
trainer builds), each rank adds up its shards' p-th powers, each layout's divided by its number of copies, and
one all-reduce over all ranks gives the total: a single collective per step for any mix of layouts and pipeline
stages. (Reducing each layout's DTensor norm on its own costs one all-reduce per layout and mesh dimension.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from itertools import chain
from typing import Any

import torch
from torch import nn
from torch.distributed.tensor import DTensor

from modalities.models.model_parts import as_parts

NORM_TYPES: dict[str, float] = {"P1_NORM": 1.0, "P2_NORM": 2.0, "MAX_NORM": math.inf}

# Returned by DummyGradientClipper: a norm is never negative, so -1 says "not computed".
NOT_COMPUTED_NORM = -1.0


@torch.no_grad()
def total_gradient_norm(
    parameters: Iterable[nn.Parameter], norm_type: float, pipeline_group: Any = None
) -> torch.Tensor:
    """The ``norm_type``-norm of all gradients together, as a plain tensor equal on every rank. With
    ``pipeline_group`` (the ranks holding the other pipeline stages) the norm covers every stage's gradients."""
    parameters = list(parameters)
    grads = [p.grad for p in parameters if p.grad is not None]
    by_layout: dict[Any, list[torch.Tensor]] = {}
    for grad in grads:
        layout = (grad.device_mesh, grad.placements) if isinstance(grad, DTensor) else None
        by_layout.setdefault(layout, []).append(grad)
    share = _local_share(by_layout, norm_type, pipeline_group, parameters)
    if share is not None:
        import torch.distributed as dist

        dtype = grads[0].dtype if grads else torch.float32
        if math.isinf(norm_type):
            dist.all_reduce(share, op=dist.ReduceOp.MAX)
            return share.to(dtype)
        dist.all_reduce(share)
        return (share ** (1.0 / norm_type)).to(dtype)
    # One collective per layout and mesh dimension (DTensor's own reduction), then one over the pipeline stages.
    norms = []
    for group in by_layout.values():
        norm = torch.nn.utils.get_total_norm(group, norm_type=norm_type)
        norms.append(norm.full_tensor() if isinstance(norm, DTensor) else norm)
    if not norms:
        norm = torch.tensor(0.0)
    elif len(norms) == 1:
        norm = norms[0]
    else:
        device = norms[0].device
        norm = torch.linalg.vector_norm(torch.stack([n.to(device) for n in norms]), ord=norm_type)
    if pipeline_group is None:
        return norm
    import torch.distributed as dist

    if math.isinf(norm_type):
        dist.all_reduce(norm, op=dist.ReduceOp.MAX, group=pipeline_group)
        return norm
    powered = norm.double() ** norm_type
    dist.all_reduce(powered, group=pipeline_group)
    return (powered ** (1.0 / norm_type)).to(norm.dtype)


def _local_share(by_layout: dict[Any, list[torch.Tensor]], norm_type: float, pipeline_group: Any,
                 parameters: list[nn.Parameter]) -> torch.Tensor | None:
    """This rank's share of the total, for one all-reduce over all ranks (sum for a p-norm, max for the max
    norm): per layout, the p-th power of the norm of the rank's local shards, divided by the number of ranks
    holding the same shards (the mesh dimensions it is replicated over). None where that single reduction would
    not give the norm: a gradient that is not a DTensor, a mesh that does not span the ranks of its pipeline
    stage, a placement other than Shard or Replicate (a pending Partial sum). Every rank must decide alike (they
    meet in the same collective): a rank without gradients takes part with 0 when its parameters are DTensors,
    as its peers' then are."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    if not by_layout:
        if not parameters or not all(isinstance(p, DTensor) for p in parameters):
            return None
        return torch.zeros((), dtype=torch.float64, device=parameters[0].device)
    if None in by_layout:
        return None
    stages = dist.get_world_size(pipeline_group) if pipeline_group is not None else 1
    infinite = math.isinf(norm_type)
    total = None
    for (mesh, placements), group in by_layout.items():
        if mesh.size() * stages != dist.get_world_size():
            return None
        copies = 1
        for dim, placement in enumerate(placements):
            if placement.is_replicate():
                copies *= mesh.size(dim)
            elif not _is_shard(placement):
                return None
        local = torch.nn.utils.get_total_norm([grad.to_local() for grad in group], norm_type=norm_type).double()
        share = local if infinite else local**norm_type / copies
        total = share if total is None else (torch.maximum(total, share) if infinite else total + share)
    return total


def _is_shard(placement: Any) -> bool:
    """Whether ranks along this mesh dimension hold disjoint parts of the tensor: Shard, or the strided shard
    FSDP2 lays over a tensor-parallel shard of the same dimension (not a Shard subclass in torch 2.13)."""
    if placement.is_shard():
        return True
    try:
        from torch.distributed.tensor.placement_types import _StridedShard
    except ImportError:  # a torch without it has no such placement either
        return False
    return isinstance(placement, _StridedShard)


def _parameters_of(model_or_parts: nn.Module | list[nn.Module]) -> list[nn.Parameter]:
    parts = as_parts(model_or_parts)
    return list(chain.from_iterable(part.parameters() for part in parts))


class GradientClipper:
    """Interface: ``clip_gradients()`` clips in place (or not) and returns the total norm before clipping."""

    def clip_gradients(self) -> torch.Tensor:
        raise NotImplementedError


class FSDPGradientClipper(GradientClipper):
    """Scales all gradients by ``min(1, max_norm / total_norm)`` like ``torch.nn.utils.clip_grad_norm_``.

    With pipeline parallelism each rank holds some stages' gradients: ``pipeline_group`` (the mesh's pp
    dimension) combines the ranks' norms, so every stage is clipped by the norm of the whole model's gradients."""

    def __init__(self, wrapped_model: nn.Module | list[nn.Module], max_norm: float, norm_type: str,
                 pipeline_group: Any = None):
        self.parameters = _parameters_of(wrapped_model)
        self.max_norm = max_norm
        self.norm_type = NORM_TYPES[norm_type]
        self.pipeline_group = pipeline_group

    def total_norm(self) -> torch.Tensor:
        return total_gradient_norm(self.parameters, self.norm_type, self.pipeline_group)

    @torch.no_grad()
    def clip_gradients(self) -> torch.Tensor:
        total_norm = self.total_norm()
        torch.nn.utils.clip_grads_with_norm_(self.parameters, self.max_norm, total_norm)
        return total_norm


class FSDPLoggingOnlyGradientClipper(FSDPGradientClipper):
    """Returns the total gradient norm and leaves the gradients untouched."""

    def __init__(self, wrapped_model: nn.Module | list[nn.Module], norm_type: str, pipeline_group: Any = None):
        super().__init__(wrapped_model, max_norm=math.inf, norm_type=norm_type, pipeline_group=pipeline_group)

    @torch.no_grad()
    def clip_gradients(self) -> torch.Tensor:
        return self.total_norm()


class MeshGroupedGradientClipper(FSDPGradientClipper):
    """Clips like FSDPGradientClipper, scaling the gradients of each mesh on its own (with the one total norm):
    torch's multi-tensor scaling cannot mix DTensors of different meshes (expert-parallel models have experts on
    one mesh and the rest on another). ``error_if_nonfinite`` raises on a NaN or infinite norm."""

    def __init__(self, wrapped_model, max_norm: float, norm_type: str, pipeline_group: Any = None,
                 error_if_nonfinite: bool = False):
        super().__init__(wrapped_model, max_norm=max_norm, norm_type=norm_type, pipeline_group=pipeline_group)
        self.error_if_nonfinite = error_if_nonfinite
        groups: dict[Any, list[nn.Parameter]] = {}
        for parameter in self.parameters:
            groups.setdefault(getattr(parameter, "device_mesh", None), []).append(parameter)
        self.groups = list(groups.values())

    @torch.no_grad()
    def clip_gradients(self) -> torch.Tensor:
        total_norm = self.total_norm()
        if self.error_if_nonfinite and not torch.isfinite(total_norm):
            raise RuntimeError(f"the total norm of the gradients is {float(total_norm)}")
        for group in self.groups:
            torch.nn.utils.clip_grads_with_norm_(group, self.max_norm, total_norm)
        return total_norm


class DummyGradientClipper(GradientClipper):
    """Computes nothing and leaves the gradients untouched; returns ``NOT_COMPUTED_NORM`` (-1)."""

    def clip_gradients(self) -> torch.Tensor:
        return torch.tensor(NOT_COMPUTED_NORM)


def _pipeline_group(wrapped_model: Any, device_mesh: Any) -> Any:
    """The process group of the mesh's pp dimension (None without pipeline parallelism)."""
    from modalities.models.model_parts import is_pipeline_part

    names = getattr(device_mesh, "mesh_dim_names", None) or ()
    if "pp" in names and device_mesh["pp"].size() > 1:
        return device_mesh["pp"].get_group()
    parts = as_parts(wrapped_model)
    if any(is_pipeline_part(part) for part in parts):
        raise ValueError(
            "gradient_clipper: the model is split into pipeline stages; give the clipper the device_mesh, so that "
            "the norm covers every stage's gradients"
        )
    return None


def get_fsdp2_gradient_clipper(
    wrapped_model: nn.Module | list[nn.Module], max_norm: float, norm_type: str, device_mesh: Any = None
) -> FSDPGradientClipper:
    return FSDPGradientClipper(wrapped_model, max_norm=max_norm, norm_type=norm_type,
                               pipeline_group=_pipeline_group(wrapped_model, device_mesh))


def get_fsdp2_logging_only_gradient_clipper(
    wrapped_model: nn.Module | list[nn.Module], norm_type: str, device_mesh: Any = None
) -> FSDPLoggingOnlyGradientClipper:
    return FSDPLoggingOnlyGradientClipper(wrapped_model, norm_type=norm_type,
                                          pipeline_group=_pipeline_group(wrapped_model, device_mesh))


def get_ep_gradient_clipper(wrapped_model: nn.Module | list[nn.Module], max_norm: float, norm_type: str,
                            device_mesh: Any = None, error_if_nonfinite: bool = False) -> MeshGroupedGradientClipper:
    """`gradient_clipper/ep`: the total norm of all gradients, each parameter once whatever its mesh (a DTensor's
    norm covers its shards once), then every gradient scaled by min(1, max_norm / norm)."""
    return MeshGroupedGradientClipper(wrapped_model, max_norm=max_norm, norm_type=norm_type,
                                      pipeline_group=_pipeline_group(wrapped_model, device_mesh),
                                      error_if_nonfinite=error_if_nonfinite)
