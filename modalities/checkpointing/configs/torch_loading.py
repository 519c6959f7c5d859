"""Config of ``checkpoint_loading/torch`` (torch-free)."""

from __future__ import annotations

from typing import Literal

from modalities.registry.types import ComponentConfig, Field, TorchDevice


class TorchCheckpointLoadingConfig(ComponentConfig):
    """Reads a full model state dict from a `.pt`/`.bin` file (e.g. written by `modalities convert to-torch`, or a
    reference FSDP1 checkpoint)."""

    device: TorchDevice = Field(
        default="cpu",
        description="Where the model and the file's tensors go: `cpu`, `cuda`, `cuda:N`, or a GPU index N "
        "(the reference's spelling).",
    )
    precision: Literal["FP_32", "FP_16", "BF_16", "FP32", "FP16", "BF16"] | None = Field(
        default=None,
        description="Cast the model to this dtype before loading; without it the model takes the dtype the "
        "checkpoint's tensors have.",
    )
