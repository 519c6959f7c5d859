"""Configs of the progress and results subscribers (torch-free)."""

from __future__ import annotations

from enum import Enum

from modalities.registry.types import ComponentConfig, ComponentRef, Field, NonNegativeStrictInt, PositiveStrictInt, StrictInt


class DummyProgressSubscriberConfig(ComponentConfig):
    """Consumes progress messages and shows nothing."""


class RichProgressSubscriberConfig(ComponentConfig):
    """A live progress bar (rank 0 only) with the step, the latest training loss and tokens/s."""

    global_rank: StrictInt = Field(ge=0, description="This process's rank; only rank 0 draws.")
    num_seen_steps: NonNegativeStrictInt = Field(default=0, description="Steps already done when the run starts.")
    num_target_steps: PositiveStrictInt = Field(description="Steps of the whole run (the bar's total).")
    train_dataloader_tag: str = Field(default="train", description="Tag of the training data loader.")
    eval_dataloaders: list[ComponentRef["data_loader"]] | None = Field(
        default=None, description="Evaluation loaders (one line each while evaluating)."
    )


class DummyResultSubscriberConfig(ComponentConfig):
    """Consumes results and shows nothing (the JSONL results file is written regardless)."""


class RichResultSubscriberConfig(ComponentConfig):
    """Prints each training and evaluation result as a table on rank 0."""

    global_rank: StrictInt = Field(ge=0, description="This process's rank; only rank 0 prints.")
    num_ranks: PositiveStrictInt | None = Field(default=None, description="Accepted for compatibility; unused.")


class WandbMode(str, Enum):
    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"
    DISABLED = "DISABLED"


class WandBEvaluationResultSubscriberConfig(ComponentConfig):
    """Logs results to Weights & Biases with the resolved config as the run's config (offline by default: nothing
    goes to the network). Needs `pip install 'modalities[wandb]'`."""

    global_rank: StrictInt = Field(ge=0, description="This process's rank; only rank 0 logs.")
    project: str = Field(description="W&B project name.")
    experiment_id: str = Field(description="Run name (`${settings.experiment_id}`).")
    mode: WandbMode = Field(default=WandbMode.OFFLINE, description="OFFLINE (default), ONLINE or DISABLED.")
    directory: str | None = Field(
        default=None, description="Folder for W&B's local files; default: the experiment folder (`wandb/` in it)."
    )
    config_file_path: str | None = Field(default=None, description="Config file uploaded with the run.")
    entity: str | None = Field(default=None, description="W&B entity (team or user) the run belongs to.")


class TensorBoardResultSubscriberConfig(ComponentConfig):
    """Writes TensorBoard event files (rank 0): losses, learning rate, grad norm, throughput and MFU as scalars
    at each logged step, and the resolved config as text. Needs `pip install 'modalities[tensorboard]'`."""

    global_rank: StrictInt | None = Field(
        default=None, ge=0, description="This process's rank; only rank 0 writes (default: from torch.distributed)."
    )
    log_dir: str | None = Field(
        default=None, description="Folder of the event files; default: `tensorboard/` in the experiment folder."
    )
    flush_secs: PositiveStrictInt = Field(default=30, description="Seconds between flushes of pending events.")


class EvaluationResultToDiscSubscriberConfig(ComponentConfig):
    """Appends every training and evaluation result as one JSON line to a file (rank 0)."""

    output_file_path: str = Field(description="The JSONL file (created with its folder; appended to).")
