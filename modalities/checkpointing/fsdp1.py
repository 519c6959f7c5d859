"""The reference's FSDP1 checkpoint files, written by ``checkpoint_saving_execution/fsdp1`` (read by
``checkpoint_loading/fsdp1``, which shards the model it loads and so lives in ``training/fsdp1.py``).

The reference writes, for each checkpoint, two files straight into ``checkpoint_path``::

    eid_<experiment_id>-model-seen_steps_<N>-seen_tokens_<T>-target_steps_<S>-target_tokens_<TT>.bin
    eid_<experiment_id>-optimizer-seen_steps_<N>-...bin

holding the full (unsharded) model state dict and the full optimizer state dict keyed by parameter name, and
``last_checkpoint_info.json`` with both paths (what ``modalities warmstart`` reads). The same files are written
and read here, with the model sharded by FSDP2 (see ``training/fsdp1.py``); files are read with
``weights_only=True``. These checkpoints carry no data position or RNG state: a run continues from them by
warm start (the config's ``*_from_checkpoint_path`` conversions), not by ``--resume``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

from modalities.checkpointing.layout import LAST_CHECKPOINT_INFO, CheckpointError, write_text_atomically

CHECKPOINT_FILE = (
    "eid_{experiment_id}-{entity}-seen_steps_{num_seen_steps}-seen_tokens_{num_seen_tokens}"
    "-target_steps_{num_target_steps}-target_tokens_{num_target_tokens}.bin"
)


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def _save_atomically(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class FSDP1CheckpointSaving:
    def __init__(self, checkpoint_path: str, global_rank: int, experiment_id: str):
        self.checkpoints_dir = Path(checkpoint_path)
        self.experiment_id = experiment_id

    def _path(self, entity: str, progress: dict[str, Any]) -> Path:
        return self.checkpoints_dir / CHECKPOINT_FILE.format(
            experiment_id=self.experiment_id,
            entity=entity,
            num_seen_steps=progress["num_seen_steps"],
            num_seen_tokens=progress["global_num_seen_tokens"],
            num_target_steps=progress.get("num_target_steps"),
            num_target_tokens=progress.get("num_target_tokens"),
        )

    @torch.no_grad()
    def save(self, progress: dict[str, Any], app_state, rank_state: dict[str, Any], config_text: str | None) -> str:
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        model_state = get_model_state_dict(app_state.model, options=options)  # collective: every rank gathers
        optimizer_state = get_optimizer_state_dict(app_state.model, app_state.optimizer, options=options)
        model_path, optimizer_path = self._path("model", progress), self._path("optimizer", progress)
        if _rank() == 0:
            self.checkpoints_dir.mkdir(parents=True, exist_ok=True)
            _save_atomically(model_state, model_path)
            _save_atomically(optimizer_state, optimizer_path)
            info = {"model_checkpoint_path": str(model_path.resolve()), "optimizer_checkpoint_path": str(optimizer_path.resolve())}
            write_text_atomically(self.checkpoints_dir / LAST_CHECKPOINT_INFO, json.dumps(info))
        _barrier()
        return str(model_path)

    def delete(self, num_seen_steps: int) -> None:
        if _rank() != 0:
            return
        pattern = re.compile(rf"eid_{re.escape(self.experiment_id)}-(model|optimizer)-seen_steps_{num_seen_steps}-.*\.bin$")
        for path in self.checkpoints_dir.glob("*.bin"):
            if pattern.match(path.name):
                path.unlink(missing_ok=True)


def read_optimizer_state_file(file_path: Path) -> dict[str, Any]:
    """A full optimizer state dict (keyed by parameter name) from a torch.save file, read as plain data."""
    if not file_path.is_file():
        raise CheckpointError(f"{file_path} is not a file (expected an optimizer checkpoint .bin)")
    try:
        state = torch.load(file_path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{file_path} cannot be read as an optimizer state dict: {e}") from None
    if not isinstance(state, dict) or "state" not in state or "param_groups" not in state:
        raise CheckpointError(f"{file_path} is not an optimizer state dict (no 'state' and 'param_groups')")
    return state
