"""Sharded checkpoints with torch.distributed.checkpoint (`checkpoint_saving_execution/dcp|fsdp`,
`checkpoint_loading/dcp|fsdp`)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)

from modalities.checkpointing.checksums import record_checksums, verify_checksums
from modalities.checkpointing.layout import (
    CONFIG_FILE,
    LAST_CHECKPOINT_INFO,
    LATEST,
    PROGRESS_FILE,
    TMP_PREFIX,
    CheckpointError,
    checkpoint_name,
    point_latest_to,
    rank_state_file,
    read_progress,
    resolve_checkpoint,
    write_text_atomically,
)
from modalities.checkpointing.safe_dcp import (
    FLATTENED,
    SafeFileSystemReader,
    SafeLoadPlanner,
    damaged,
    optimizer_layout_of,
    read_metadata,
    safe_load,
    saved_keys,
)

# Test hook: seconds to sleep after the shards are written and before the checkpoint is renamed into place, so
# a test can kill the process in the middle of a save.
SLEEP_MID_SAVE_ENV = "MODALITIES_TEST_SLEEP_MID_SAVE_S"


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


class DCPCheckpointSaving:
    def __init__(self, checkpoint_path: str, global_rank: int, experiment_id: str):
        self.checkpoints_dir = Path(checkpoint_path) / experiment_id / "checkpoints"
        self.global_rank = global_rank

    def save(self, progress: dict[str, int], app_state, rank_state: dict[str, Any], config_text: str | None) -> str:
        name = checkpoint_name(progress["num_seen_steps"])
        final = self.checkpoints_dir / name
        tmp = self.checkpoints_dir / f"{TMP_PREFIX}{name}"
        rank = _rank()
        if rank == 0:
            self.checkpoints_dir.mkdir(parents=True, exist_ok=True)
            if tmp.exists():  # left by a save that was killed
                shutil.rmtree(tmp)
            tmp.mkdir()
        _barrier()
        try:
            dcp.save({"app": app_state}, checkpoint_id=str(tmp))
            torch.save(rank_state, rank_state_file(tmp, rank))
            if rank == 0:
                (tmp / PROGRESS_FILE).write_text(json.dumps(progress, indent=2))
                if config_text is not None:
                    (tmp / CONFIG_FILE).write_text(config_text)
            delay = float(os.environ.get(SLEEP_MID_SAVE_ENV, "0") or 0)
            if delay:
                print(f"[test hook] sleeping {delay}s in the middle of saving {tmp}", flush=True)
                time.sleep(delay)
        except BaseException:
            # Ctrl-C or a failed write: nothing half-written stays behind, `latest` is untouched.
            if rank == 0:
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        # dcp.save raises on every rank if any rank failed, so past this barrier all shards are on disk.
        _barrier()
        try:
            record_checksums(tmp)
        except BaseException:
            if rank == 0:
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        if rank == 0:
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            point_latest_to(self.checkpoints_dir, name)
            # What the reference's `modalities warmstart --last_checkpoint_info_file_path` reads.
            write_text_atomically(
                self.checkpoints_dir / LAST_CHECKPOINT_INFO, json.dumps({"checkpoint_folder_path": str(final.resolve())})
            )
        _barrier()
        return str(final)

    def delete(self, num_seen_steps: int) -> None:
        if _rank() != 0:
            return
        folder = self.checkpoints_dir / checkpoint_name(num_seen_steps)
        latest = self.checkpoints_dir / LATEST
        if latest.exists() and latest.resolve() == folder.resolve():
            return
        shutil.rmtree(folder, ignore_errors=True)


def read_rank_state(rank_file: Path) -> dict[str, Any]:
    """A rank's data position and RNG states, read with weights_only=True (numpy arrays of checkpoints written
    before the numpy state was stored as a tensor are admitted too; nothing else that needs code)."""
    import numpy as np

    numpy_array_globals = [np._core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
    try:
        with torch.serialization.safe_globals(numpy_array_globals):
            state = torch.load(rank_file, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"{rank_file}: cannot be read as plain data (refused or damaged: {str(e).splitlines()[0]})"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{rank_file}: holds a {type(state).__name__}, not a rank state")
    return state


def load_training_checkpoint(path: str | Path, app_state) -> tuple[Path, dict, dict[str, Any]]:
    """Load model, optimizer and scheduler into app_state; return the folder, the progress and this rank's state."""
    folder = resolve_checkpoint(path)
    progress = read_progress(folder)
    world_size = dist.get_world_size() if dist.is_initialized() else 1
    saved_world_size = int(progress.get("world_size", world_size))
    safe_load({"app": app_state}, folder)  # DCP reshards to this run's ranks by itself
    # On the saved number of ranks each rank takes its own data position and RNG states. On another number,
    # every rank takes rank 0's data position (the ranks move in lockstep; the data loader converts it), and
    # RNG states, which belong to ranks that no longer exist, start afresh.
    same_ranks = saved_world_size == world_size
    rank_file = rank_state_file(folder, _rank() if same_ranks else 0)
    if not rank_file.is_file():
        raise CheckpointError(f"{rank_file} is missing: the checkpoint is incomplete")
    rank_state = read_rank_state(rank_file)
    if not same_ranks:
        rank_state = {**rank_state, "rng": None, "saved_world_size": saved_world_size}
    return folder, progress, rank_state


class DCPCheckpointLoading:
    """Loads a sharded checkpoint folder: ours (``step_N``) or the reference's (``eid_..-seen_steps_..``)."""

    def __init__(self, global_rank: int | None = None):
        pass

    def load_model_checkpoint(self, model: nn.Module, file_path: Path) -> nn.Module:
        folder = resolve_checkpoint(file_path, require_progress=False)
        state = get_model_state_dict(model)
        safe_load({"app": {"model": state}}, folder)
        set_model_state_dict(model, state)
        return model

    def load_optimizer_checkpoint(self, optimizer, model: nn.Module, file_path: Path):
        """The folder's optimizer state (moments, step counts) in ``optimizer``; its hyperparameters stay the
        config's, and the folder's scheduler state is recorded for the executor (optim/continuation.py)."""
        from modalities.optim.continuation import config_hyperparameters_kept

        folder = resolve_checkpoint(file_path, require_progress=False)
        # The saved layout decides the keys we ask for: flattened by parameter name (the reference's and ours) or
        # by group index (what we wrote before).
        keys = saved_keys(folder)
        flatten = optimizer_layout_of(keys) == FLATTENED
        options = StateDictOptions(flatten_optimizer_state_dict=flatten)
        model_state, optimizer_state = get_state_dict(model, optimizer, options=options)
        scheduler_state, step = saved_schedule_of(folder, keys)
        with config_hyperparameters_kept(optimizer, str(folder), scheduler_state, step):
            safe_load({"app": {"model": model_state, "optimizer": optimizer_state}}, folder)
            set_state_dict(
                model, optimizer, model_state_dict=model_state, optim_state_dict=optimizer_state, options=options
            )
        return optimizer


def saved_schedule_of(folder: Path, keys) -> tuple[dict | None, int | None]:
    """A checkpoint folder's scheduler state (as plain data; None without one) and its steps (None if unknown)."""
    from modalities.checkpointing.plain_entries import nest, read_plain_entries

    prefix = "app.lr_scheduler."
    state = nest(read_plain_entries(folder, (prefix,)), prefix) if any(k.startswith(prefix) for k in keys) else {}
    try:
        step = int(read_progress(folder)["num_seen_steps"])
    except (CheckpointError, KeyError, TypeError, ValueError):
        step = None
    return state or None, step


def read_model_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The full (unsharded) model state dict of a checkpoint folder, read in one process without a process group."""
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    folder = resolve_checkpoint(path, require_progress=False)
    prefix = "app.model."
    metadata = read_metadata(folder)
    state: dict[str, torch.Tensor] = {}
    for key, item in metadata.state_dict_metadata.items():
        if key.startswith(prefix) and isinstance(item, TensorStorageMetadata):
            state[key] = torch.empty(item.size, dtype=item.properties.dtype)
    if not state:
        raise CheckpointError(f"{folder} holds no model weights (no app.model.* tensors)")
    verify_checksums(folder)
    try:
        dcp.load(state, storage_reader=SafeFileSystemReader(str(folder)), planner=SafeLoadPlanner(), no_dist=True)
    except CheckpointError:
        raise
    except (Exception, CheckpointException) as e:
        raise damaged(folder, e) from None
    return {key[len(prefix) :]: tensor for key, tensor in state.items() if not key.endswith("inv_freq")}
