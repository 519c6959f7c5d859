"""Profiling and debugging components."""

from modalities.registry.registry import ComponentSpec

_CFG = "modalities.profiling.config:"


def _row(key: str, variant: str, config: str, builder: str, description: str, interface: str, produces: str = "") -> ComponentSpec:
    return ComponentSpec(key, variant, _CFG + config, builder, produces=produces, description=description, interface=interface)


CATALOG = [
    _row("steppable_profiler", "no_profiler", "SteppableNoProfilerConfig", "modalities.profiling.profilers:SteppableNoProfiler",
         "A profiler that records nothing.", "SteppableProfiler"),
    _row("steppable_profiler", "kernel_tracing", "SteppableKernelProfilerConfig", "modalities.profiling.profilers:kernel_tracing",
         "torch.profiler over wait/warm-up/active steps: Chrome trace and summary per tracked rank.", "SteppableProfiler"),
    _row("steppable_profiler", "memory_tracing", "SteppableMemoryProfilerConfig", "modalities.profiling.profilers:memory_tracing",
         "CUDA memory history snapshot over the active steps (needs a GPU).", "SteppableProfiler"),
    _row("steppable_profiler", "combined", "SteppableCombinedProfilerConfig",
         "modalities.profiling.profilers:SteppableCombinedProfiler", "Several profilers stepped together.", "SteppableProfiler"),
    _row("steppable_component", "forward_pass", "SteppableForwardPassConfig",
         "modalities.profiling.steppable:SteppableForwardPass",
         "A forward (and optional backward and optimizer step) on generated batches, for profiling.", "SteppableComponent"),
    _row("dataset_batch_generator", "random", "RandomDatasetBatchGeneratorConfig",
         "modalities.profiling.steppable:RandomDatasetBatchGenerator", "Batches of uniform random values.",
         "DatasetBatchGenerator"),
    _row("debugging", "settings", "DebuggingConfig", "modalities.profiling.debugging:Debugging",
         "Keeps debugging hooks registered; optionally deterministic algorithms.", "Debugging"),
    _row("model_debugging_hook", "nan_hook", "NaNHookConfig", "modalities.profiling.debugging:register_nan_hooks",
         "Reports or raises on NaN in any module's inputs or outputs.", "list[RemovableHandle]"),
    _row("model_debugging_hook", "print_forward_hook", "PrintForwardHookConfig",
         "modalities.profiling.debugging:register_print_forward_hooks",
         "Prints every module's inputs and outputs (or their shapes).", "list[RemovableHandle]"),
    _row("model", "debugging_enriched", "DebuggingEnrichedModelConfig",
         "modalities.profiling.debugging:get_debugging_enriched_model",
         "The model with hooks writing per-module tensor statistics to JSONL.", "nn.Module"),
]
