"""Config of ``results_subscriber/wandb`` (torch-free)."""

from __future__ import annotations

from enum import Enum

from modalities.registry.types import ComponentConfig, Field, StrictInt


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
