"""What a training run is: the `settings` it reads and the components it needs, as one typed description.

``TrainingRunConfig`` is registered as the ``training`` root of the registry (see training/catalog.py): the
compiler validates a training config's top level against it (with the same placeholders and positions as
every component), the JSON Schema and the graph read it, and ``modalities train`` builds exactly these parts
and hands them to the executor (training/entry.py). It is torch-free.

The blocks the executor reads are strict: an unknown field (``sequence_lenght``) is an error at its line with
"did you mean". Other keys of ``settings`` (``paths``, ``config_file_path``, numbers of your own) are free:
they exist to be interpolated.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from modalities.registry.types import (
    ComponentRef,
    Field,
    NonNegativeStrictInt,
    PositiveStrictInt,
    StrictInt,
    empty_list,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReferencingKeys(_Strict):
    """Names of the keys under which batches and model outputs carry their tensors."""

    sample_key: str = Field(description="Key of the model input in a batch, e.g. `input_ids`.")
    target_key: str = Field(description="Key of the targets in a batch, e.g. `target_ids`.")
    prediction_key: str = Field(description="Key under which the model returns its output, e.g. `logits`.")


class CudaEnv(_Strict):
    """The process's place in the job, usually `${cuda_env:RANK}` and friends."""

    local_rank: NonNegativeStrictInt = Field(description="Rank of this process on its node (`LOCAL_RANK`).")
    global_rank: NonNegativeStrictInt = Field(description="Rank of this process in the job (`RANK`).")
    world_size: PositiveStrictInt = Field(description="Number of processes in the job (`WORLD_SIZE`).")


class StepProfile(_Strict):
    """What one optimizer step consumes."""

    gradient_accumulation_steps: PositiveStrictInt = Field(description="Micro-batches accumulated per step.")
    local_train_micro_batch_size: PositiveStrictInt = Field(description="Samples per rank and micro-batch.")
    sequence_length: PositiveStrictInt = Field(description="Tokens per sample.")
    dp_degree: PositiveStrictInt | None = Field(
        default=None, description="Data-parallel degree (often a reference to number_conversion/parallel_degree)."
    )


class Intervals(_Strict):
    """How often (in optimizer steps) the trainer logs, checkpoints and evaluates."""

    training_log_interval_in_steps: PositiveStrictInt = Field(description="Steps between training log lines.")
    checkpointing_interval_in_steps: PositiveStrictInt = Field(description="Steps between checkpoints.")
    evaluation_interval_in_steps: PositiveStrictInt = Field(description="Steps between evaluations.")


class TrainingTarget(_Strict):
    """How long to train."""

    num_target_steps: PositiveStrictInt = Field(description="Optimizer steps to train for in all.")
    num_target_tokens: PositiveStrictInt | None = Field(default=None, description="Global tokens to train on.")


class TrainingProgress(_Strict):
    """Where training stands: zeros in a fresh run's config, the counts so far in a checkpoint and while training.

    The one description of progress: the config's block, what the loop counts, and what a checkpoint's
    training_progress.json holds (with the run's world size and targets beside it)."""

    global_num_seen_tokens: NonNegativeStrictInt = Field(default=0, description="Tokens seen across all ranks.")
    num_seen_steps: NonNegativeStrictInt = Field(default=0, description="Optimizer steps taken.")
    num_seen_samples: NonNegativeStrictInt = Field(default=0, description="Samples seen across all ranks.")
    last_step: StrictInt = Field(default=-1, ge=-1, description="Index of the last step taken (-1: none).")
    train_batches_consumed: NonNegativeStrictInt = Field(
        default=0, description="Micro-batches this rank took from the train loader (kept in checkpoints; 0 here)."
    )

    def as_dict(self, **extra: Any) -> dict[str, Any]:
        return {**self.model_dump(), "last_step": self.num_seen_steps - 1, **extra}


class ConsistencyEnforcement(_Strict):
    """Which inconsistencies of the step profile, target and intervals are errors (true) rather than warnings.
    Left out, every check is a warning; written out, an omitted flag is true (as in Modalities)."""

    enforce_tokens_per_step_consistency: bool = Field(
        default=True, description="Fail if the target tokens are not the target steps times the tokens per step."
    )
    enforce_last_step_logged: bool = Field(default=True, description="Fail if the last step would not be logged.")
    enforce_last_step_evaluated: bool = Field(default=True, description="Fail if the last step would not be evaluated.")
    enforce_last_step_checkpointed: bool = Field(
        default=True, description="Fail if the last step would not be checkpointed."
    )
    enforce_enough_tokens_in_dataset: bool = Field(
        default=True, description="Fail if the train data holds fewer tokens than the target."
    )


class TrainingSettings(BaseModel):
    """The `settings` of a training config. The blocks below are read by the run and checked strictly; any other
    key (`paths`, `config_file_path`, values of your own) is free and exists to be interpolated."""

    model_config = ConfigDict(extra="allow")

    experiment_id: str | None = Field(default=None, description="Name of the experiment folder.")
    referencing_keys: ReferencingKeys = Field(description=ReferencingKeys.__doc__)
    cuda_env: CudaEnv | None = Field(default=None, description=CudaEnv.__doc__)
    step_profile: StepProfile = Field(description=StepProfile.__doc__)
    intervals: Intervals = Field(description=Intervals.__doc__)
    training_target: TrainingTarget = Field(description=TrainingTarget.__doc__)
    training_progress: TrainingProgress = Field(
        default_factory=TrainingProgress, description="Where training starts (zeros for a fresh run)."
    )
    consistency_enforcement: ConsistencyEnforcement | None = Field(
        default=None, description=ConsistencyEnforcement.__doc__
    )
    paths: dict[str, Any] | None = Field(default=None, description="Named paths, used through ${settings.paths.NAME}.")


class TrainingRunConfig(BaseModel):
    """A training run: `settings` and the components `modalities train` hands to the training loop. Any other
    top-level key is a component (or a list of them) these use."""

    model_config = ConfigDict(extra="allow")

    settings: TrainingSettings = Field(description=TrainingSettings.__doc__)
    app_state: ComponentRef["app_state"] = Field(description="Model, optimizer and lr scheduler, as checkpointed.")
    loss_fn: ComponentRef["loss"] = Field(description="The training loss.")
    train_dataloader: ComponentRef["data_loader"] = Field(description="The data the model is trained on.")
    eval_dataloaders: list[ComponentRef["data_loader"]] = Field(
        default_factory=empty_list, description="Evaluated every evaluation_interval_in_steps (may be empty)."
    )
    checkpoint_saving: ComponentRef["checkpoint_saving"] = Field(description="When and how checkpoints are saved.")
    gradient_clipper: ComponentRef["gradient_clipper"] = Field(description="Clips (or only measures) gradients.")
    progress_subscriber: ComponentRef["progress_subscriber"] = Field(description="Shows progress.")
    evaluation_subscriber: ComponentRef["results_subscriber"] = Field(description="Receives every result.")
    device_mesh: ComponentRef["device_mesh"] | None = Field(
        default=None, description="The devices and their parallel layout (default: one data-parallel dimension)."
    )
    mfu_calculator: ComponentRef["mfu_calculator"] | None = Field(
        default=None, description="Computes MFU for the log lines (on CUDA)."
    )
    scheduled_pipeline: ComponentRef["pipeline"] | None = Field(
        default=None, description="With pipeline parallelism: the scheduled pipeline (pipeline/scheduled) that runs "
        "each step; the model parts of app_state are its modules."
    )
    profiler: ComponentRef["steppable_profiler"] | None = Field(
        default=None, description="Entered for the loop and stepped once per optimizer step."
    )
