"""`checkpoint_loading/torch`: a full model state dict from a `.pt` file."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
from torch.distributed.fsdp import FSDPModule

from modalities.checkpointing.layout import CheckpointError

_DTYPES = {"FP_32": torch.float32, "FP_16": torch.float16, "BF_16": torch.bfloat16}


class TorchCheckpointLoading:
    def __init__(self, device: str = "cpu", precision: str | None = None):
        self.device = torch.device(device)
        self.precision = _DTYPES[precision] if precision else None

    def load_model_checkpoint(self, model: nn.Module, file_path: Path) -> nn.Module:
        file_path = Path(file_path)
        if not file_path.is_file():
            raise CheckpointError(
                f"{file_path} is not a file; checkpoint_loading/torch reads a .pt state dict "
                "(use checkpoint_loading/fsdp for a checkpoint folder)"
            )
        state = torch.load(file_path, map_location=self.device, weights_only=True)
        if not isinstance(state, dict):
            raise CheckpointError(f"{file_path} holds a {type(state).__name__}, not a model state dict")
        if self.precision is not None:
            model = model.to(self.precision)
        try:
            if isinstance(model, FSDPModule):
                set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, strict=True))
            else:
                model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise CheckpointError(f"{file_path} does not fit the model {type(model).__name__}: {e}") from None
        return model

    def load_optimizer_checkpoint(self, optimizer, model: nn.Module, file_path: Path):
        raise CheckpointError(
            "checkpoint_loading/torch reads model weights only; load optimizer state with checkpoint_loading/fsdp"
        )
