"""A model given as pipeline parts: wrappers (tensor parallel, FSDP2, initialization, activation checkpointing,
compile) apply to each part of a list as they do to one model, so the reference's pipeline configs chain them
unchanged."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TypeVar

F = TypeVar("F", bound=Callable)

# Set on a module cut from a whole model by pipeline/staged: the names of the modules it keeps, and the whole
# model's parameters in order as (name, shape, dtype), so that a seeded initializer can draw as for the whole.
STAGE_MODULES_ATTRIBUTE = "pipeline_stage_modules"
WHOLE_MODEL_PARAMETERS_ATTRIBUTE = "whole_model_parameters"
# Set by model/gpt2_cp and model/gpt2_tp: how the training loop splits sequences over the mesh's cp ranks
# ("headtail" or None), read from the model (parts) it trains.
CONTEXT_PARALLEL_LOAD_BALANCER_ATTRIBUTE = "context_parallel_load_balancer"


# True while a pipeline stage runs its modules on stand-in inputs to learn its tensor shapes (torch's metadata
# inference before the first step): not a forward of the run's data, so models count it in no statistics.
_STAND_IN_FORWARD: ContextVar[bool] = ContextVar("modalities_stand_in_forward", default=False)


@contextlib.contextmanager
def stand_in_forward() -> Iterator[None]:
    token = _STAND_IN_FORWARD.set(True)
    try:
        yield
    finally:
        _STAND_IN_FORWARD.reset(token)


def in_stand_in_forward() -> bool:
    return _STAND_IN_FORWARD.get()


def as_parts(model) -> list:
    """A model or a rank's pipeline parts (a list or tuple of them), as a list of parts."""
    return list(model) if isinstance(model, (list, tuple)) else [model]


def for_each_part(builder: F) -> F:
    """``builder(model, **kw)`` applied to every part when ``model`` is a list, returning the list."""

    @functools.wraps(builder)
    def wrapped(model, *args, **kwargs):
        if isinstance(model, (list, tuple)):
            return [builder(part, *args, **kwargs) for part in model]
        return builder(model, *args, **kwargs)

    return wrapped  # type: ignore[return-value]


def is_pipeline_part(module) -> bool:
    return getattr(module, STAGE_MODULES_ATTRIBUTE, None) is not None


def sum_over_pipeline_stages(value: int, device_mesh) -> int:
    """A count over this rank's pipeline parts (parameters, FLOPs) summed over the device mesh's pp dimension:
    the whole model's count (the value itself without pipeline parallelism). Collective over the pp group."""
    names = getattr(device_mesh, "mesh_dim_names", None) or ()
    if "pp" not in names:
        return value
    import torch
    import torch.distributed as dist

    total = torch.tensor(value, dtype=torch.int64, device=device_mesh.device_type)
    dist.all_reduce(total, group=device_mesh["pp"].get_group())
    return int(total.item())
