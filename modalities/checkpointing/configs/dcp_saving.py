"""Config of ``checkpoint_saving_execution/dcp``, ``checkpoint_saving_execution/fsdp`` and
``checkpoint_saving_execution/fsdp1`` (torch-free)."""

from __future__ import annotations

from modalities.registry.types import ComponentConfig, Field, StrictInt


class DCPCheckpointSavingConfig(ComponentConfig):
    """Sharded checkpoints with torch.distributed.checkpoint, under checkpoint_path/experiment_id/checkpoints/."""

    checkpoint_path: str = Field(description="Root folder; checkpoints go to <root>/<experiment_id>/checkpoints/.")
    global_rank: StrictInt = Field(ge=0, description="This process's rank (`${settings.cuda_env.global_rank}`).")
    experiment_id: str = Field(description="The experiment id (`${settings.experiment_id}`).")
