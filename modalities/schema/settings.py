"""The known fields of a config's ``settings`` block, as Modalities configs write them (torch-free).

Only the JSON Schema uses these models: they type the fields editors should complete and check, and leave
every block open for fields of a user's own (``additionalProperties`` stays allowed). Counts that other
nodes compute (``dp_degree``, ``num_target_tokens``, ...) may be inline ``number_conversion`` components or
references; the schema generator adds those alternatives to every integer field.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _OpenBlock(BaseModel):
    model_config = ConfigDict(extra="allow")


class ReferencingKeys(_OpenBlock):
    """Names of the keys under which batches carry their tensors."""

    sample_key: str | None = Field(None, description="Key of the model input in a batch, e.g. `input_ids`.")
    target_key: str | None = Field(None, description="Key of the targets in a batch, e.g. `target_ids`.")
    prediction_key: str | None = Field(None, description="Key under which the model returns its output, e.g. `logits`.")


class CudaEnv(_OpenBlock):
    """The process's place in the distributed job, usually `${cuda_env:RANK}` and friends."""

    local_rank: int | None = Field(None, description="Rank of this process on its node (`LOCAL_RANK`).")
    global_rank: int | None = Field(None, description="Rank of this process in the job (`RANK`).")
    world_size: int | None = Field(None, description="Number of processes in the job (`WORLD_SIZE`).")


class Paths(_OpenBlock):
    """Named paths other nodes use through `${settings.paths.NAME}`; any name may be added."""

    checkpoint_saving_path: str | None = Field(None, description="Directory checkpoints are written to.")
    train_dataset_path: str | None = Field(None, description="Path of the training dataset.")
    test_dataset_path: str | None = Field(None, description="Path of the evaluation dataset.")
    experiments_root_path: str | None = Field(None, description="Directory under which experiment folders go.")


class Intervals(_OpenBlock):
    """How often (in optimizer steps) the trainer logs, checkpoints and evaluates."""

    training_log_interval_in_steps: int | None = Field(None, description="Steps between training log lines.")
    checkpointing_interval_in_steps: int | None = Field(None, description="Steps between checkpoints.")
    evaluation_interval_in_steps: int | None = Field(None, description="Steps between evaluations.")


class ConsistencyEnforcement(_OpenBlock):
    """Checks of the step profile against the training target; each true turns a warning into an error."""

    enforce_tokens_per_step_consistency: bool | None = Field(
        None, description="Fail if the target token count is not a whole number of steps."
    )
    enforce_last_step_logged: bool | None = Field(None, description="Fail if the last step would not be logged.")
    enforce_last_step_evaluated: bool | None = Field(None, description="Fail if the last step would not be evaluated.")
    enforce_last_step_checkpointed: bool | None = Field(
        None, description="Fail if the last step would not be checkpointed."
    )


class StepProfile(_OpenBlock):
    """What one optimizer step consumes."""

    gradient_accumulation_steps: int | None = Field(None, description="Micro-batches accumulated per step.")
    local_train_micro_batch_size: int | None = Field(None, description="Samples per rank per micro-batch.")
    sequence_length: int | None = Field(None, description="Tokens per sample.")
    dp_degree: int | None = Field(None, description="Data-parallel degree (often a reference to a component).")


class TrainingTarget(_OpenBlock):
    """How long to train."""

    num_target_tokens: int | None = Field(None, description="Global tokens to train on.")
    num_target_steps: int | None = Field(None, description="Optimizer steps to train for.")


class TrainingProgress(_OpenBlock):
    """Where training starts: zeros for a fresh run, the checkpoint's counters when warm-starting."""

    global_num_seen_tokens: int | None = Field(None, description="Tokens already seen across all ranks.")
    num_seen_steps: int | None = Field(None, description="Optimizer steps already taken.")
    num_seen_samples: int | None = Field(None, description="Samples already seen across all ranks.")
    last_step: int | None = Field(None, description="The last step taken (-1 for a fresh run).")


class Settings(_OpenBlock):
    """Plain values other nodes use through `${settings...}`. Known fields are typed; any other may be added."""

    experiment_id: str | None = Field(None, description="Name of this run; experiment folders are named after it.")
    config_file_path: str | None = Field(None, description="Path of this config file (for logging it with the run).")
    referencing_keys: ReferencingKeys | None = Field(None, description=ReferencingKeys.__doc__)
    cuda_env: CudaEnv | None = Field(None, description=CudaEnv.__doc__)
    paths: Paths | None = Field(None, description=Paths.__doc__)
    intervals: Intervals | None = Field(None, description=Intervals.__doc__)
    consistency_enforcement: ConsistencyEnforcement | None = Field(None, description=ConsistencyEnforcement.__doc__)
    step_profile: StepProfile | None = Field(None, description=StepProfile.__doc__)
    training_target: TrainingTarget | None = Field(None, description=TrainingTarget.__doc__)
    training_progress: TrainingProgress | None = Field(None, description=TrainingProgress.__doc__)
