from modalities.registry.registry import ComponentSpec

_CFG = "modalities.conversion.config:"
_FN = "modalities.conversion.number_conversion:"


def _row(variant: str, config: str, description: str, produces: str = "int") -> ComponentSpec:
    return ComponentSpec(
        component_key="number_conversion",
        variant_key=variant,
        config=_CFG + config,
        builder=_FN + variant,
        produces=produces,
        description=description,
        interface="int",
    )


CATALOG = [
    _row(
        "local_num_batches_from_num_samples",
        "LocalNumBatchesFromNumSamplesConfig",
        "Local batches per rank for a global number of samples.",
    ),
    _row(
        "local_num_batches_from_num_tokens",
        "LocalNumBatchesFromNumTokensConfig",
        "Local batches per rank for a global number of tokens.",
    ),
    _row("num_steps_from_num_samples", "NumStepsFromNumSamplesConfig", "Optimizer steps for a number of samples."),
    _row("num_steps_from_num_tokens", "NumStepsFromNumTokensConfig", "Optimizer steps for a number of tokens."),
    _row("num_tokens_from_num_steps", "NumTokensFromNumStepsConfig", "Global tokens consumed by a number of steps."),
    _row(
        "num_tokens_from_num_steps_callable",
        "NumTokensFromNumStepsCallableConfig",
        "A callable mapping a step count to the global tokens consumed.",
        produces="callable",
    ),
    _row("num_samples_from_num_tokens", "NumSamplesFromNumTokensConfig", "Whole samples in a number of tokens."),
    _row("num_seen_steps_from_checkpoint_path", "CheckpointPathConfig", "Steps done when a checkpoint was saved."),
    _row("last_step_from_checkpoint_path", "CheckpointPathConfig", "Index of a checkpoint's last step (steps - 1)."),
    _row(
        "global_num_seen_tokens_from_checkpoint_path",
        "CheckpointPathConfig",
        "Tokens trained on when a checkpoint was saved.",
    ),
    _row(
        "global_num_target_tokens_from_checkpoint_path",
        "CheckpointPathConfig",
        "The token target of the run that saved a checkpoint.",
    ),
    _row(
        "num_target_steps_from_checkpoint_path",
        "CheckpointPathConfig",
        "The step target of the run that saved a checkpoint (target tokens / tokens per step).",
    ),
]
