"""The routed experts of a block: E SwiGLU feed-forward networks stored as three stacked weights, run on tokens
sorted by expert.

    expert e:  y = w3[e] (silu(w1[e] x) * w2[e] x)      w1, w2: (E, d_ff, d_model), w3: (E, d_model, d_ff)

The names and shapes are the reference's (``ffn.experts.w1/w2/w3``), so its checkpoints load; they map onto
transformers' Qwen3-MoE as ``gate_up_proj = cat(w1, w2, dim=1)`` and ``down_proj = w3``.

The tokens arrive sorted by expert with the count per expert, so each expert's tokens are one contiguous
segment. Three ways to run all experts (``backend``), equal up to float rounding:

- ``grouped_mm``: ``torch._grouped_mm``, one kernel per projection for all segments (CUDA, bf16, sm90+);
- ``padded_bmm``: every segment padded to the longest, then one batched matmul per projection (any device and
  dtype; costs E x longest segment rows of memory);
- ``looped``: one matmul per expert (the reference's way; a Python loop, kept as the baseline of
  tools/bench and the independent check of the other two).

``auto`` takes grouped_mm where the device has it, else padded_bmm. :func:`run_experts` is the function the
benchmark calls with each backend.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

BACKENDS = ("grouped_mm", "padded_bmm", "looped")


def _as_local(weight: torch.Tensor) -> torch.Tensor:
    """An expert-parallel weight is a DTensor sharded over the experts: this rank computes with its own."""
    to_local = getattr(weight, "to_local", None)
    return to_local() if to_local is not None else weight


def grouped_mm_supported(x: torch.Tensor, w1: torch.Tensor, w3: torch.Tensor) -> bool:
    """Whether ``torch._grouped_mm`` runs these shapes here: a CUDA device of compute capability 9.0 or higher
    (H100, H200, B200), bfloat16, and 16-byte aligned rows (d_model and d_ff multiples of 8)."""
    if not hasattr(torch, "_grouped_mm") or x.device.type != "cuda" or x.dtype != torch.bfloat16:
        return False
    if w1.shape[-1] % 8 or w1.shape[-2] % 8 or w3.shape[-2] % 8:
        return False
    return torch.cuda.get_device_capability(x.device) >= (9, 0)


def _swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return F.silu(gate) * up


class _ContiguousGradient(torch.autograd.Function):
    """The identity, whose backward hands on a contiguous gradient: torch._grouped_mm's backward refuses an
    expanded one (stride 0, e.g. the gradient of a sum), which torch 2.11 on an H200 showed."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous()


def experts_grouped_mm(x, counts, w1, w2, w3):
    offsets = torch.cumsum(counts, dim=0, dtype=torch.int32)
    hidden = _swiglu(torch._grouped_mm(x, w1.transpose(-2, -1), offs=offsets),
                     torch._grouped_mm(x, w2.transpose(-2, -1), offs=offsets))
    return _ContiguousGradient.apply(torch._grouped_mm(hidden, w3.transpose(-2, -1), offs=offsets))


def experts_padded_bmm(x, counts, w1, w2, w3):
    num_experts, rows = counts.numel(), x.shape[0]
    longest = int(counts.max())  # one host sync
    starts = torch.cumsum(counts, dim=0) - counts
    expert_of_row = torch.repeat_interleave(torch.arange(num_experts, device=x.device), counts, output_size=rows)
    slot_of_row = torch.arange(rows, device=x.device) - starts[expert_of_row]
    padded = x.new_zeros(num_experts, longest, x.shape[1]).index_put((expert_of_row, slot_of_row), x)
    hidden = _swiglu(torch.bmm(padded, w1.transpose(1, 2)), torch.bmm(padded, w2.transpose(1, 2)))
    return torch.bmm(hidden, w3.transpose(1, 2))[expert_of_row, slot_of_row]


def experts_looped(x, counts, w1, w2, w3):
    outputs, start = [], 0
    for expert, count in enumerate(counts.tolist()):
        segment = x[start : start + count]
        outputs.append(F.linear(_swiglu(F.linear(segment, w1[expert]), F.linear(segment, w2[expert])), w3[expert]))
        start += count
    return torch.cat(outputs) if outputs else x.new_zeros(0, w3.shape[1])


_IMPLEMENTATIONS: dict[str, Callable] = {
    "grouped_mm": experts_grouped_mm,
    "padded_bmm": experts_padded_bmm,
    "looped": experts_looped,
}
_grouped_mm_failed: set[tuple] = set()


def run_experts(x: torch.Tensor, counts: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, w3: torch.Tensor,
                backend: str = "auto") -> torch.Tensor:
    """Every expert on its segment of ``x`` (rows sorted by expert, ``counts[e]`` rows for expert e); the outputs
    in the same row order. Weights in another dtype than ``x`` (fp32 masters, bf16 activations) are cast."""
    w1, w2, w3 = (_as_local(w) for w in (w1, w2, w3))
    if w1.dtype != x.dtype:
        w1, w2, w3 = w1.to(x.dtype), w2.to(x.dtype), w3.to(x.dtype)
    if x.shape[0] == 0:
        # No token for any expert here: the weights still join the graph (with zero gradients), so that every
        # rank reduces the same gradients under FSDP2.
        return x.new_zeros(0, w3.shape[1]) + 0 * (x.sum() + w1.sum() + w2.sum() + w3.sum())
    if backend == "auto":
        key = (x.device.type, x.dtype)
        backend = "grouped_mm" if key not in _grouped_mm_failed and grouped_mm_supported(x, w1, w3) else "padded_bmm"
        if backend == "grouped_mm":
            try:
                return experts_grouped_mm(x, counts, w1, w2, w3)
            except RuntimeError as e:  # a torch build without the kernel for this device: say so once
                _grouped_mm_failed.add(key)
                warnings.warn(f"torch._grouped_mm failed on {key} ({e}); the experts run as padded_bmm", stacklevel=2)
                backend = "padded_bmm"
    return _IMPLEMENTATIONS[backend](x, counts, w1, w2, w3)


class GroupedExperts(nn.Module):
    """E SwiGLU experts in three stacked weights (the reference's layout and initialization)."""

    def __init__(self, num_experts: int, d_model: int, d_ff: int, ffn_dropout: float = 0.0, backend: str = "auto"):
        super().__init__()
        self.num_experts, self.d_model, self.d_ff, self.backend = num_experts, d_model, d_ff, backend
        self.dropout = nn.Dropout(ffn_dropout) if ffn_dropout > 0 else nn.Identity()
        self.w1 = nn.Parameter(torch.empty(num_experts, d_ff, d_model))
        self.w2 = nn.Parameter(torch.empty(num_experts, d_ff, d_model))
        self.w3 = nn.Parameter(torch.empty(num_experts, d_model, d_ff))
        # Expert parallelism (model/ep_wrapped) sets this: tokens then travel to their experts' ranks and back.
        self.expert_parallel = None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The reference's init: kaiming_uniform_(a=sqrt(5)) of each stacked weight (its fan-in is the product of
        its last two sizes), drawn at construction too, so a model used without model_initialized is sane."""
        for weight in (self.w1, self.w2, self.w3):
            if weight.device.type != "meta":
                nn.init.kaiming_uniform_(weight, a=math.sqrt(5))

    def forward(self, x_sorted: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """``x_sorted``: routed tokens (rows) sorted by expert; ``counts``: rows per expert, (E,)."""
        if self.expert_parallel is not None:
            return self.expert_parallel.run(x_sorted, counts, self.run_local)
        return self.run_local(x_sorted, counts)

    def run_local(self, x_sorted: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """The experts this rank holds (all of them without expert parallelism) on their sorted tokens."""
        return self.dropout(run_experts(x_sorted, counts, self.w1, self.w2, self.w3, self.backend))
