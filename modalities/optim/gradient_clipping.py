"""Gradient clipping by total norm, for plain and FSDP2 (DTensor-sharded) gradients.

Every clipper has ``clip_gradients() -> Tensor``, returning the total norm of the gradients *before* clipping
(the value a training loop logs). Under FSDP2 each rank holds only shards of the gradients; the total norm is
the norm over the full gradients, so the shards' partial norms are reduced across the ranks that hold them
(sum of p-th powers for a p-norm, max for the max norm). DTensor does that reduction from each gradient's own
mesh and placements, so replicated dimensions (HSDP) are not counted twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from itertools import chain
from typing import Any

import torch
from torch import nn
from torch.distributed.tensor import DTensor

NORM_TYPES: dict[str, float] = {"P1_NORM": 1.0, "P2_NORM": 2.0, "MAX_NORM": math.inf}

# Returned by DummyGradientClipper: a norm is never negative, so -1 says "not computed".
NOT_COMPUTED_NORM = -1.0


@torch.no_grad()
def total_gradient_norm(parameters: Iterable[nn.Parameter], norm_type: float) -> torch.Tensor:
    """The ``norm_type``-norm of all gradients together, as a plain tensor equal on every rank."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    # Gradients sharing a layout are reduced together: one collective per distinct mesh and placement.
    by_layout: dict[Any, list[torch.Tensor]] = {}
    for grad in grads:
        layout = (grad.device_mesh, grad.placements) if isinstance(grad, DTensor) else None
        by_layout.setdefault(layout, []).append(grad)
    norms = []
    for group in by_layout.values():
        norm = torch.nn.utils.get_total_norm(group, norm_type=norm_type)
        if isinstance(norm, DTensor):
            norm = norm.full_tensor()  # all-reduces the shards' partial norms
        norms.append(norm)
    if len(norms) == 1:
        return norms[0]
    device = norms[0].device
    return torch.linalg.vector_norm(torch.stack([n.to(device) for n in norms]), ord=norm_type)


def _parameters_of(model_or_parts: nn.Module | list[nn.Module]) -> list[nn.Parameter]:
    parts = model_or_parts if isinstance(model_or_parts, (list, tuple)) else [model_or_parts]
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
        norm = total_gradient_norm(self.parameters, self.norm_type)
        if self.pipeline_group is None:
            return norm
        import torch.distributed as dist

        if math.isinf(self.norm_type):
            dist.all_reduce(norm, op=dist.ReduceOp.MAX, group=self.pipeline_group)
            return norm
        powered = norm.double() ** self.norm_type
        dist.all_reduce(powered, group=self.pipeline_group)
        return (powered ** (1.0 / self.norm_type)).to(norm.dtype)

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
    parts = wrapped_model if isinstance(wrapped_model, (list, tuple)) else [wrapped_model]
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
