"""Debugging components: NaN and print hooks, deterministic kernels, and per-module tensor statistics."""

from __future__ import annotations

import json
import logging
import os
import time
from functools import partial
from pathlib import Path

import torch
from torch import nn

from modalities.models.model_parts import as_parts, for_each_part

logger = logging.getLogger(__name__)


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [v for v in value.values() if isinstance(v, torch.Tensor)]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, torch.Tensor)]
    return []


def nan_hook(module, inputs, outputs, module_path: str, raise_exception: bool) -> None:
    for where, value in (("input", inputs), ("output", outputs)):
        if any(torch.isnan(t).any() for t in _tensors(value) if t.is_floating_point()):
            message = f"NaN in the {where} of {type(module).__name__} '{module_path}'"
            if raise_exception:
                raise FloatingPointError(message)
            logger.error(message)


def print_hook(module, inputs, outputs, module_path: str, print_shape_only: bool) -> None:
    shapes_in = [tuple(t.shape) for t in _tensors(inputs)]
    shapes_out = [tuple(t.shape) for t in _tensors(outputs)]
    text = f"Module: {type(module).__name__}, Path: {module_path}, Input shapes: {shapes_in}, Output shapes: {shapes_out}"
    if not print_shape_only:
        text += f", Input: {inputs}, Output: {outputs}"
    print(text, flush=True)


def register_forward_hooks(model: nn.Module | list[nn.Module], hook) -> list:
    parts = as_parts(model)  # pipeline model parts
    return [module.register_forward_hook(partial(hook, module_path=name))
            for part in parts for name, module in part.named_modules()]


def register_nan_hooks(model: nn.Module, raise_exception: bool = False) -> list:
    """``model_debugging_hook/nan_hook``: the hook handles."""
    return register_forward_hooks(model, partial(nan_hook, raise_exception=raise_exception))


def register_print_forward_hooks(model: nn.Module, print_shape_only: bool = False) -> list:
    """``model_debugging_hook/print_forward_hook``: the hook handles."""
    return register_forward_hooks(model, partial(print_hook, print_shape_only=print_shape_only))


class Debugging:
    """``debugging/settings``: keeps the hooks registered for the run; optionally deterministic algorithms."""

    def __init__(self, forward_hooks: list | None = None, enable_determinism: bool = False):
        self.forward_hooks = forward_hooks or []
        self.enable_determinism = enable_determinism
        if enable_determinism:
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)

    def remove_hooks(self) -> None:
        for group in self.forward_hooks:
            for handle in group:
                handle.remove()


def _stats(tensor: torch.Tensor) -> dict:
    local = tensor.to_local() if hasattr(tensor, "to_local") else tensor
    local = local.detach()
    is_float = local.is_floating_point()
    numeric = is_float or local.dtype in (torch.int32, torch.int64)
    as_float = local.float() if numeric else None
    return {
        "global_shape": list(tensor.shape),
        "local_shape": list(local.shape),
        "dtype": str(local.dtype),
        "is_dtensor": hasattr(tensor, "to_local"),
        "nan_count": int(torch.isnan(local).sum()) if is_float else 0,
        "inf_count": int(torch.isinf(local).sum()) if is_float else 0,
        "mean": float(as_float.mean()) if is_float and local.numel() else -1,
        "std": float(as_float.std()) if is_float and local.numel() > 1 else -1,
        "min": float(as_float.min()) if numeric and local.numel() else -1,
        "max": float(as_float.max()) if numeric and local.numel() else -1,
    }


@for_each_part
def get_debugging_enriched_model(model: nn.Module, logging_dir_path: str, tracked_ranks: list[int] | None = None,
                                 log_interval_steps: int | None = 1) -> nn.Module:
    """``model/debugging_enriched``: every submodule writes statistics of its inputs and weights (before forward),
    outputs (after forward) and output gradients (in backward) as JSON lines to tensor_stats_rank_<R>.jsonl."""
    import torch.distributed as dist

    rank = dist.get_rank() if dist.is_initialized() else 0
    if tracked_ranks is not None and rank not in tracked_ranks:
        return model
    folder = Path(logging_dir_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"tensor_stats_rank_{rank}.jsonl"
    interval = log_interval_steps or 0

    def write(tag: str, hook_type: str, tensor: torch.Tensor, counter: int) -> None:
        record = {"tensor_tag": tag, "hook_type": hook_type, **_stats(tensor), "counter": counter, "rank": rank,
                  "timestamp_ns": time.perf_counter_ns()}
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def due(counter: list[int]) -> bool:
        now = counter[0]
        counter[0] += 1
        return interval <= 0 or now % interval == 0

    for name, module in model.named_modules():
        if not name:
            continue
        counters = {"pre": [0], "post": [0], "backward": [0]}

        def pre(module, inputs, name=name, counter=counters["pre"]):
            if not due(counter):
                return
            for tensor in _tensors(inputs):
                write(name, "forward_input", tensor, counter[0] - 1)
            for param_name, param in module.named_parameters(recurse=False):
                write(f"{name}.{param_name}", "forward_weights", param, counter[0] - 1)

        def post(module, inputs, outputs, name=name, counter=counters["post"]):
            if due(counter):
                for tensor in _tensors(outputs):
                    write(name, "forward_output", tensor, counter[0] - 1)

        def backward(module, grad_input, grad_output, name=name, counter=counters["backward"]):
            if due(counter):
                for tensor in _tensors(grad_output):
                    write(name, "backward_output", tensor, counter[0] - 1)

        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)
        module.register_full_backward_hook(backward)
    return model
