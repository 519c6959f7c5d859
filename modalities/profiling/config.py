"""Configs of the profiling and debugging components (torch-free).

Field names are the reference's (``steppable_profiler/*``, ``steppable_component/forward_pass``,
``dataset_batch_generator/random``, ``debugging/settings``, ``model_debugging_hook/*``, ``model/debugging_enriched``).
"""

from __future__ import annotations

from typing import Literal

from modalities.registry.types import (
    ComponentConfig,
    ComponentRef,
    Field,
    NonNegativeStrictInt,
    StrictInt,
    empty_list,
)

_STEPS = "Steps of each phase: wait (nothing recorded), warm up (recorded, discarded), active (kept)."


class SteppableKernelProfilerConfig(ComponentConfig):
    """torch.profiler over a number of steps: a Chrome trace and a summary table per tracked rank."""

    num_wait_steps: NonNegativeStrictInt = Field(description=_STEPS)
    num_warmup_steps: NonNegativeStrictInt = Field(description=_STEPS)
    num_active_steps: NonNegativeStrictInt = Field(description=_STEPS)
    profiler_activities: list[Literal["CPU", "CUDA"]] = Field(
        description="What to record; CUDA is left out (with a note) on a machine without a GPU."
    )
    profile_memory: bool = Field(description="Record tensor allocations.")
    record_shapes: bool = Field(description="Record the input shapes of every op.")
    with_flops: bool = Field(description="Estimate the FLOPs of matmuls and convolutions.")
    with_stack: bool = Field(description="Record the Python stack of every op.")
    with_modules: bool = Field(description="Record which module each op ran in.")
    output_folder_path: str = Field(description="Where profiler_trace_ranks_<W>_rank_<R>.json and the summary go.")
    tracked_ranks: list[StrictInt] | None = Field(default=None, description="Ranks that profile (others do nothing).")


class SteppableMemoryProfilerConfig(ComponentConfig):
    """CUDA memory history over a number of steps, written as a snapshot (needs a GPU; on a CPU it does nothing)."""

    memory_snapshot_folder_path: str = Field(description="Where memory_snapshot_ranks_<W>_rank_<R>.pkl goes.")
    num_wait_steps: NonNegativeStrictInt = Field(description=_STEPS)
    num_warmup_steps: NonNegativeStrictInt = Field(description=_STEPS)
    num_active_steps: NonNegativeStrictInt = Field(description=_STEPS)
    tracked_ranks: list[StrictInt] | None = Field(default=None, description="Ranks that profile (others do nothing).")


class SteppableNoProfilerConfig(ComponentConfig):
    """A profiler that records nothing."""


class SteppableCombinedProfilerConfig(ComponentConfig):
    """Several profilers stepped together."""

    profilers: list[ComponentRef["steppable_profiler"]] = Field(description="The profilers.")  # noqa: F821


class SteppableForwardPassConfig(ComponentConfig):
    """One profiling step: a forward pass on a generated batch (and, if given, loss, backward, optimizer step)."""

    model: ComponentRef["model"] = Field(description="The model.")
    dataset_batch_generator: ComponentRef["dataset_batch_generator"] = Field(description="Makes the batches.")  # noqa: F821
    loss_fn: ComponentRef["loss"] | None = Field(default=None, description="With a loss: backward too.")
    optimizer: ComponentRef["optimizer"] | None = Field(default=None, description="With an optimizer: a step too.")


class RandomDatasetBatchGeneratorConfig(ComponentConfig):
    """Batches of uniform random values: `input_ids` and `target_ids` of the given dimensions."""

    dims: dict[str, StrictInt] = Field(description="Named dimensions in order, e.g. {batch_size: 2, sequence_length: 128}.")
    data_type: Literal["float32", "bfloat16", "int64"] = Field(description="Element type.")
    min_val: StrictInt = Field(description="Smallest value.")
    max_val: StrictInt = Field(description="Largest value (exclusive for int64).")


class DebuggingConfig(ComponentConfig):
    """Debugging for a run: hooks to keep registered and, optionally, deterministic kernels."""

    forward_hooks: list[ComponentRef["model_debugging_hook"]] = Field(  # noqa: F821
        default_factory=empty_list, description="Hook registrations (model_debugging_hook components, each a list of hooks)."
    )
    enable_determinism: bool = Field(default=False, description="Use deterministic algorithms (slower).")


class NaNHookConfig(ComponentConfig):
    """Reports (or raises on) NaN in the inputs or outputs of every module."""

    model: ComponentRef["model"] = Field(description="The model to watch.")
    raise_exception: bool = Field(default=False, description="Raise at the first NaN instead of reporting it.")


class PrintForwardHookConfig(ComponentConfig):
    """Prints the inputs and outputs (or only their shapes) of every module in forward."""

    model: ComponentRef["model"] = Field(description="The model to watch.")
    print_shape_only: bool = Field(default=False, description="Print shapes only.")


class DebuggingEnrichedModelConfig(ComponentConfig):
    """The model with hooks that write statistics of every module's inputs, outputs, weights and gradients to
    tensor_stats_rank_<R>.jsonl."""

    model: ComponentRef["model"] = Field(description="The model.")
    logging_dir_path: str = Field(description="Folder of the statistics files.")
    tracked_ranks: list[StrictInt] | None = Field(default=None, description="Ranks that write (default: all).")
    log_interval_steps: StrictInt | None = Field(default=1, description="Write every n-th call of each hook.")
