"""Config of ``checkpoint_loading/torch`` (torch-free)."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from modalities.registry.types import ComponentConfig, Field, StrictInt


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
