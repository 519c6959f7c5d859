"""`checkpoint_loading/torch`: a full model state dict from a `.pt`/`.bin` file (read with weights_only=True)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
from torch.distributed.fsdp import FSDPModule

from modalities.checkpointing.compat import fit_state_dict_to_model
from modalities.checkpointing.config import PRECISION_ALIASES
from modalities.checkpointing.layout import CheckpointError
from modalities.models.model import retie_parameters, tied_parameter_slots

_DTYPES = {"FP_32": torch.float32, "FP_16": torch.float16, "BF_16": torch.bfloat16}


def torch_device(device: int | str) -> torch.device:
    """The reference's device spelling (a GPU index) or torch's."""
    return torch.device(f"cuda:{device}" if isinstance(device, int) else device)


def read_state_dict_file(file_path: Path, device: torch.device) -> dict[str, torch.Tensor]:
    """A state dict of tensors from a torch.save file; anything that would need code to load is refused."""
    file_path = Path(file_path)
    if not file_path.is_file():
        raise CheckpointError(
            f"{file_path} is not a file; checkpoint_loading/torch reads a .pt state dict "
            "(use checkpoint_loading/fsdp for a checkpoint folder)"
        )
    try:
        state = torch.load(file_path, map_location=device, weights_only=True)
    except Exception as e:  # unpickling refused, truncated or not a torch file
        raise CheckpointError(f"{file_path} cannot be read as a state dict of tensors: {e}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{file_path} holds a {type(state).__name__}, not a model state dict of tensors")
    return state


class TorchCheckpointLoading:
    def __init__(self, device: int | str = "cpu", precision: str | None = None):
        self.device = torch_device(device)
        self.precision = _DTYPES[PRECISION_ALIASES.get(precision, precision)] if precision else None

    def load_model_checkpoint(self, model: nn.Module, file_path: Path) -> nn.Module:
        file_path = Path(file_path)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise CheckpointError(
                f"checkpoint_loading/torch: device {self.device} asked for, but this machine has no CUDA GPU; "
                "set device: cpu"
            )
        state = fit_state_dict_to_model(read_state_dict_file(file_path, self.device), model)
        saved_dtype = next(iter(state.values())).dtype if state else None
        if self.precision is not None and saved_dtype is not None and saved_dtype != self.precision:
            warnings.warn(
                f"{file_path} holds {saved_dtype} weights; they are loaded as {self.precision} (precision)",
                stacklevel=2,
            )
        try:
            if isinstance(model, FSDPModule):
                if self.precision is not None:
                    model = model.to(self.precision)
                set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, strict=True))
            elif self.precision is not None:
                model = model.to(device=self.device, dtype=self.precision)
                model.load_state_dict(state, strict=True)
            else:
                # The model takes the checkpoint's tensors themselves, with their dtype (as the reference does).
                tied = tied_parameter_slots(model)
                model = model.to(self.device)
                model.load_state_dict(state, strict=True, assign=True)
                retie_parameters(tied)  # assign gives every name its own parameter
        except RuntimeError as e:
            raise CheckpointError(f"{file_path} does not fit the model {type(model).__name__}: {e}") from None
        return model

    def load_optimizer_checkpoint(self, optimizer, model: nn.Module, file_path: Path):
        raise CheckpointError(
            "checkpoint_loading/torch reads model weights only; load optimizer state with checkpoint_loading/fsdp"
        )
