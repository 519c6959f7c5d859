"""The routed experts of a block: E SwiGLU feed-forward networks stored as three stacked weights, run on tokens
sorted by expert.

    expert e:  y = w3[e] (silu(w1[e] x) * w2[e] x)      w1, w2: (E, d_ff, d_model), w3: (E, d_model, d_ff)

The names and shapes are the reference's (``ffn.experts.w1/w2/w3``), so its checkpoints load; they map onto
transformers' Qwen3-MoE as ``gate_up_proj = cat(w1, w2, dim=1)`` and ``down_proj = w3``.

The tokens arrive sorted by expert with the count per expert, so each expert's tokens are one contiguous
segment. Three ways to run all experts (``backend``), equal up to float rounding (bit-equal on CPU):

- ``grouped_mm``: ``torch._grouped_mm``, one call per projection for all segments. On CUDA sm90+ in bf16 it is
  one kernel that reads the counts on the device (no host sync); elsewhere torch runs it as a C++ loop of one
  matmul per segment (torch 2.13 on CPU: float32, bfloat16, float16), which pads nothing and spares the Python
  loop's autograd bookkeeping. Rows must be 16-byte aligned: d_model and d_ff multiples of 16 / element size.
- ``padded_bmm``: every segment padded to the longest, then one batched matmul per projection (any device and
  dtype; costs E x longest segment rows of work and memory);
- ``looped``: one matmul per expert in Python (the reference's way; the baseline of tools/bench and the
  independent check of the other two).

``auto`` (:func:`choose_backend`) takes grouped_mm where it runs (above); elsewhere (float64, unaligned sizes, a
CUDA GPU before sm90 or outside bf16, a torch without the kernel) it weighs padding against the loop's overhead
per expert from the counts (:func:`padded_bmm_is_cheaper`). :func:`run_experts` is the function the benchmark
calls with each backend.
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


GROUPED_MM_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# What one expert costs the Python loop beyond its matmuls (about 15 autograd ops forward and backward, and their
# dispatch), in multiply-adds of that device's matmuls. CPU: measured with tools/bench/bench_moe.py's shapes on
# one thread of the 2-core sandbox (process time, torch 2.13): the loop took 100-270 us per expert more than
# grouped_mm's C++ loop over the same matmuls, which ran at 24-36 G multiply-adds/s; 9 * 2**19 = 4.7 M is
# 150 us at 31 G/s. CUDA (an estimate, not measured): ~150 us of host time per expert while the GPU could have
# done ~4.8 G multiply-adds (32 T/s, float32); below that per expert the loop is bound by the host.
LOOP_OVERHEAD_MULTIPLY_ADDS = {"cpu": 9 * 2**19, "cuda": 9 * 2**29}
_grouped_mm_failed: set[tuple[str, torch.dtype]] = set()  # (device type, dtype) where torch._grouped_mm raised


def grouped_mm_runs(device_type: str, dtype: torch.dtype, d_model: int, d_ff: int,
                    capability: tuple[int, int] | None = None) -> bool:
    """Whether ``auto`` takes ``torch._grouped_mm``: on CPU in the dtypes torch's loop takes, and on CUDA where it
    is one kernel without a host sync (compute capability 9.0 or higher: H100, H200, B200; bfloat16); rows
    16-byte aligned (d_model and d_ff multiples of 16 / element size) in both."""
    if not hasattr(torch, "_grouped_mm") or dtype not in GROUPED_MM_DTYPES:
        return False
    alignment = 16 // dtype.itemsize
    if d_model % alignment or d_ff % alignment:
        return False
    if device_type == "cpu":
        return True
    return device_type == "cuda" and dtype == torch.bfloat16 and capability is not None and capability >= (9, 0)


def grouped_mm_supported(x: torch.Tensor, w1: torch.Tensor, w3: torch.Tensor) -> bool:
    """:func:`grouped_mm_runs` for these tokens (rows of ``x``) and weights (w1: (E, d_ff, d_model))."""
    capability = torch.cuda.get_device_capability(x.device) if x.device.type == "cuda" else None
    return grouped_mm_runs(x.device.type, x.dtype, w1.shape[-1], w1.shape[-2], capability)


def padded_bmm_is_cheaper(counts: list[int], d_model: int, d_ff: int, device_type: str) -> bool:
    """The cost model of ``auto`` where grouped_mm does not run: padded_bmm or the loop, from the rows per expert.

    A routed row costs both the same: three projections of d_model x d_ff multiply-adds, each once forward and
    twice backward (the gradients of its input and of its weight), 9 d_model d_ff in all. padded_bmm computes
    E x max(counts) rows, max(counts) - count of them padding for each expert; the loop computes the sum of the
    counts and pays a fixed overhead for each expert it calls (those with rows). So padded_bmm is cheaper when

        (E max(counts) - sum(counts)) 9 d_model d_ff  <=  experts with rows x LOOP_OVERHEAD_MULTIPLY_ADDS

    (ties to padded_bmm: one batched call). Copying rows into and out of the padded form is left out: it is
    linear in d_model where the matmuls are in d_model d_ff."""
    padding_rows = len(counts) * max(counts, default=0) - sum(counts)
    experts_called = sum(1 for count in counts if count)
    overhead = LOOP_OVERHEAD_MULTIPLY_ADDS.get(device_type, LOOP_OVERHEAD_MULTIPLY_ADDS["cuda"])
    return padding_rows * 9 * d_model * d_ff <= experts_called * overhead


def choose_backend(x: torch.Tensor, counts: torch.Tensor, w1: torch.Tensor,
                   w3: torch.Tensor) -> tuple[str, list[int] | None]:
    """``auto``'s backend for these tokens, and the counts on the host where the choice read them: grouped_mm
    where it runs (no host sync on CUDA), else padded_bmm or looped by :func:`padded_bmm_is_cheaper` (the one
    host sync on CUDA that either of them makes anyway; they take the counts read here)."""
    if (x.device.type, x.dtype) not in _grouped_mm_failed and grouped_mm_supported(x, w1, w3):
        return "grouped_mm", None
    host_counts = counts.tolist()
    cheaper = padded_bmm_is_cheaper(host_counts, w1.shape[-1], w1.shape[-2], x.device.type)
    return ("padded_bmm" if cheaper else "looped"), host_counts


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


def experts_grouped_mm(x, counts, w1, w2, w3, host_counts=None):
    offsets = torch.cumsum(counts, dim=0, dtype=torch.int32)
    hidden = _swiglu(torch._grouped_mm(x, w1.transpose(-2, -1), offs=offsets),
                     torch._grouped_mm(x, w2.transpose(-2, -1), offs=offsets))
    return _ContiguousGradient.apply(torch._grouped_mm(hidden, w3.transpose(-2, -1), offs=offsets))


def experts_padded_bmm(x, counts, w1, w2, w3, host_counts: list[int] | None = None):
    num_experts, rows = counts.numel(), x.shape[0]
    longest = max(host_counts) if host_counts is not None else int(counts.max())  # one host sync
    starts = torch.cumsum(counts, dim=0) - counts
    expert_of_row = torch.repeat_interleave(torch.arange(num_experts, device=x.device), counts, output_size=rows)
    slot_of_row = torch.arange(rows, device=x.device) - starts[expert_of_row]
    padded = x.new_zeros(num_experts, longest, x.shape[1]).index_put((expert_of_row, slot_of_row), x)
    hidden = _swiglu(torch.bmm(padded, w1.transpose(1, 2)), torch.bmm(padded, w2.transpose(1, 2)))
    return torch.bmm(hidden, w3.transpose(1, 2))[expert_of_row, slot_of_row]


def experts_looped(x, counts, w1, w2, w3, host_counts: list[int] | None = None):
    # split and unbind rather than slicing and indexing: each of them is one autograd node whose backward
    # concatenates or stacks, where a slice per expert would zero-fill a gradient of the whole tensor per expert
    sizes = host_counts if host_counts is not None else counts.tolist()
    outputs = [F.linear(_swiglu(F.linear(rows, gate), F.linear(rows, up)), down)
               for rows, gate, up, down in zip(x.split(sizes), w1.unbind(), w2.unbind(), w3.unbind()) if rows.numel()]
    return torch.cat(outputs) if outputs else x.new_zeros(0, w3.shape[1])


_IMPLEMENTATIONS: dict[str, Callable] = {
    "grouped_mm": experts_grouped_mm,
    "padded_bmm": experts_padded_bmm,
    "looped": experts_looped,
}


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
    host_counts = None
    if backend == "auto":
        backend, host_counts = choose_backend(x, counts, w1, w3)
        if backend == "grouped_mm":
            try:
                return _IMPLEMENTATIONS["grouped_mm"](x, counts, w1, w2, w3)
            except RuntimeError as e:  # a torch build without the kernel for this device: say so once
                _grouped_mm_failed.add((x.device.type, x.dtype))
                backend, host_counts = choose_backend(x, counts, w1, w3)
                warnings.warn(f"torch._grouped_mm failed on {x.device.type} {x.dtype} ({e}); from now on the experts "
                              f"run as padded_bmm or looped by the counts (this call: {backend})", stacklevel=2)
    return _IMPLEMENTATIONS[backend](x, counts, w1, w2, w3, host_counts=host_counts)


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
