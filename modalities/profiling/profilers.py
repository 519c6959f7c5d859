"""Steppable profilers: context managers that are stepped once per training (or profiling) step.

``len(profiler)`` is the number of steps it needs (wait + warm-up + active). A rank that is not tracked, and a
memory profiler without a GPU, get a profiler that records nothing but has the same length, so every rank
steps the same number of times.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class SteppableNoProfiler:
    def __init__(self, num_steps: int = -1):
        self._num_steps = num_steps

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def __len__(self) -> int:
        return self._num_steps

    def step(self) -> None:
        return None


class SteppableCombinedProfiler:
    def __init__(self, profilers: list):
        self.profilers = list(profilers)
        self._entered: list | None = None

    def __enter__(self):
        if self._entered is not None:
            raise RuntimeError("the combined profiler is already entered")
        self._entered = [profiler.__enter__() or profiler for profiler in self.profilers]
        return self

    def __exit__(self, *exc) -> None:
        if self._entered is None:
            raise RuntimeError("the combined profiler was not entered")
        for profiler in self._entered:
            profiler.__exit__(*exc)
        self._entered = None

    def __len__(self) -> int:
        return max((len(p) for p in self.profilers), default=0)

    def step(self) -> None:
        if self._entered is None:
            raise RuntimeError("step() outside the combined profiler's with block")
        for profiler in self._entered:
            profiler.step()


class SteppableKernelProfiler:
    """torch.profiler with a wait/warmup/active schedule; writes the trace and a summary table when the active
    steps are done (or when leaving the with block early)."""

    def __init__(self, num_wait_steps, num_warmup_steps, num_active_steps, activities, profile_memory, record_shapes,
                 with_flops, with_stack, with_modules, trace_output_path: Path, summary_output_path: Path):
        self.num_wait_steps, self.num_warmup_steps, self.num_active_steps = num_wait_steps, num_warmup_steps, num_active_steps
        self.options = dict(
            activities=activities, profile_memory=profile_memory, record_shapes=record_shapes, with_flops=with_flops,
            with_stack=with_stack, with_modules=with_modules,
        )
        self.trace_output_path, self.summary_output_path = Path(trace_output_path), Path(summary_output_path)
        self._profiler = None
        self._steps = None
        self._exported = False

    def __len__(self) -> int:
        return self.num_wait_steps + self.num_warmup_steps + self.num_active_steps

    def __enter__(self):
        from torch.profiler import profile, schedule

        if self._profiler is not None:
            raise RuntimeError("the kernel profiler is already entered")
        self._profiler = profile(
            schedule=schedule(wait=self.num_wait_steps, warmup=self.num_warmup_steps, active=self.num_active_steps),
            **self.options,
        )
        self._profiler.__enter__()
        self._steps, self._exported = 0, False
        return self

    def step(self) -> None:
        if self._profiler is None:
            raise RuntimeError("step() outside the kernel profiler's with block")
        self._steps += 1
        if self._steps <= len(self):
            self._profiler.step()
        if self._steps == len(self) and not self._exported:
            self._export()

    def __exit__(self, *exc) -> None:
        if self._profiler is None:
            return
        if not self._exported:
            self._export()
        self._profiler = None

    def _export(self) -> None:
        self._profiler.__exit__(None, None, None)
        self._exported = True
        self.trace_output_path.parent.mkdir(parents=True, exist_ok=True)
        self._profiler.export_chrome_trace(str(self.trace_output_path))
        self.summary_output_path.parent.mkdir(parents=True, exist_ok=True)
        self.summary_output_path.write_text(self._profiler.key_averages().table(), encoding="utf-8")


class SteppableMemoryProfiler:
    """CUDA memory history from the first active step; a snapshot (the format of pytorch.org/memory_viz) after the
    last."""

    MAX_ENTRIES = 100_000

    def __init__(self, memory_snapshot_path: Path, num_wait_steps: int, num_warmup_steps: int, num_active_steps: int):
        self.path = Path(memory_snapshot_path)
        self.num_wait_steps, self.num_warmup_steps, self.num_active_steps = num_wait_steps, num_warmup_steps, num_active_steps
        self._steps = None

    def __len__(self) -> int:
        return self.num_wait_steps + self.num_warmup_steps + self.num_active_steps

    def __enter__(self):
        self._steps = 0
        self._maybe_start()
        return self

    def _maybe_start(self) -> None:
        if self._steps == self.num_wait_steps + self.num_warmup_steps and self.num_active_steps > 0:
            torch.cuda.memory._record_memory_history(max_entries=self.MAX_ENTRIES)

    def step(self) -> None:
        if self._steps is None:
            raise RuntimeError("step() outside the memory profiler's with block")
        self._steps += 1
        self._maybe_start()
        if self._steps == len(self) and self.num_active_steps > 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("wb") as f:
                pickle.dump(torch.cuda.memory._snapshot(), f)
            torch.cuda.memory._record_memory_history(enabled=None)

    def __exit__(self, *exc) -> None:
        self._steps = None


def kernel_tracing(num_wait_steps, num_warmup_steps, num_active_steps, profiler_activities, profile_memory,
                   record_shapes, with_flops, with_stack, with_modules, output_folder_path, tracked_ranks=None):
    """Builder of ``steppable_profiler/kernel_tracing``."""
    rank, world = _rank_and_world()
    steps = num_wait_steps + num_warmup_steps + num_active_steps
    if rank not in (tracked_ranks or []):
        return SteppableNoProfiler(num_steps=steps)
    activities = [torch.profiler.ProfilerActivity.CPU] if "CPU" in profiler_activities else []
    if "CUDA" in profiler_activities:
        if torch.cuda.is_available():
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        else:
            warnings.warn("steppable_profiler/kernel_tracing: no CUDA device here, so only CPU activity is recorded", stacklevel=2)
    if not activities:
        return SteppableNoProfiler(num_steps=steps)
    folder = Path(output_folder_path)
    return SteppableKernelProfiler(
        num_wait_steps, num_warmup_steps, num_active_steps, activities, profile_memory, record_shapes, with_flops,
        with_stack, with_modules,
        trace_output_path=folder / f"profiler_trace_ranks_{world}_rank_{rank}.json",
        summary_output_path=folder / f"profiler_summary_ranks_{world}_rank_{rank}.txt",
    )


def memory_tracing(memory_snapshot_folder_path, num_wait_steps, num_warmup_steps, num_active_steps, tracked_ranks=None):
    """Builder of ``steppable_profiler/memory_tracing``."""
    rank, world = _rank_and_world()
    steps = num_wait_steps + num_warmup_steps + num_active_steps
    if rank not in (tracked_ranks or []):
        return SteppableNoProfiler(num_steps=steps)
    if not torch.cuda.is_available():
        warnings.warn("steppable_profiler/memory_tracing records CUDA memory; this machine has no GPU, so it does nothing", stacklevel=2)
        return SteppableNoProfiler(num_steps=steps)
    path = Path(memory_snapshot_folder_path) / f"memory_snapshot_ranks_{world}_rank_{rank}.pkl"
    return SteppableMemoryProfiler(path, num_wait_steps, num_warmup_steps, num_active_steps)
