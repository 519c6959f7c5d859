"""Configs of checkpoint saving and loading (torch-free)."""

from __future__ import annotations

from typing import Literal

from modalities.registry.types import ComponentConfig, ComponentRef, Field, PositiveStrictInt, StrictInt


class CheckpointSavingConfig(ComponentConfig):
    """Saves checkpoints when the strategy says so, the way the execution says."""

    checkpoint_saving_strategy: ComponentRef["checkpoint_saving_strategy"] = Field(
        description="Decides when to save and which older checkpoints to delete."
    )
    checkpoint_saving_execution: ComponentRef["checkpoint_saving_execution"] = Field(
        description="Writes (and deletes) checkpoints on disk."
    )


class SaveEveryKStepsCheckpointingStrategyConfig(ComponentConfig):
    """Save every k optimizer steps; never delete."""

    k: PositiveStrictInt = Field(description="Save when the number of steps done is a multiple of k.")


class SaveKMostRecentCheckpointsStrategyConfig(ComponentConfig):
    """Save whenever offered and keep only the k most recent checkpoints."""

    k: StrictInt = Field(ge=-1, description="Checkpoints kept: -1 keeps all, 0 saves none.")


class DCPCheckpointSavingConfig(ComponentConfig):
    """Sharded checkpoints with torch.distributed.checkpoint, under checkpoint_path/experiment_id/checkpoints/."""

    checkpoint_path: str = Field(description="Root folder; checkpoints go to <root>/<experiment_id>/checkpoints/.")
    global_rank: StrictInt = Field(ge=0, description="This process's rank (`${settings.cuda_env.global_rank}`).")
    experiment_id: str = Field(description="The experiment id (`${settings.experiment_id}`).")


class DCPCheckpointLoadingConfig(ComponentConfig):
    """Reads model and optimizer state from a sharded checkpoint folder into (sharded) model and optimizer."""

    global_rank: StrictInt | None = Field(default=None, ge=0, description="Accepted for compatibility; unused.")


class TorchCheckpointLoadingConfig(ComponentConfig):
    """Reads a full model state dict from a `.pt` file (e.g. written by `modalities convert to-torch`)."""

    device: Literal["cpu", "cuda"] | str = Field(default="cpu", description="Where the file's tensors are loaded to.")
    precision: Literal["FP_32", "FP_16", "BF_16"] | None = Field(
        default=None, description="Cast the loaded weights to this dtype (None keeps the model's dtype)."
    )
