"""Configs of checkpoint saving and loading (torch-free)."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

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


# Both spellings of a dtype: the reference's checkpoint loading says FP32/BF16/FP16, its mixed precision FP_32/...
PRECISION_ALIASES = {"FP32": "FP_32", "FP16": "FP_16", "BF16": "BF_16"}


class TorchCheckpointLoadingConfig(ComponentConfig):
    """Reads a full model state dict from a `.pt`/`.bin` file (e.g. written by `modalities convert to-torch`, or a
    reference FSDP1 checkpoint)."""

    device: StrictInt | str = Field(
        default="cpu",
        description="Where the model and the file's tensors go: `cpu`, `cuda`, `cuda:N`, or a GPU index N "
        "(the reference's spelling).",
    )
    precision: Literal["FP_32", "FP_16", "BF_16", "FP32", "FP16", "BF16"] | None = Field(
        default=None,
        description="Cast the model to this dtype before loading; without it the model takes the dtype the "
        "checkpoint's tensors have.",
    )

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: int | str) -> int | str:
        if isinstance(device, int):
            if device < 0:
                raise ValueError(f"a GPU index must be >= 0, got {device}")
            return device
        kind, _, index = device.partition(":")
        if kind not in ("cpu", "cuda") or (index and not index.isdigit()) or (kind == "cpu" and index):
            raise ValueError(f"device must be cpu, cuda, cuda:N or a GPU index N, got {device!r}")
        return device
