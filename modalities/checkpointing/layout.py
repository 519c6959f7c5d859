"""Where a checkpoint lives on disk, and how a path given by a user is turned into a complete checkpoint folder.

A checkpoint folder ``step_<N>`` holds the DCP shards (``.metadata``, ``*.distcp``), ``rank_<r>.pt`` (data
loader position and RNG states of rank r), ``training_progress.json`` and ``config.yaml``. It is written as
``.tmp-step_<N>`` and renamed when complete; ``latest`` is a symlink moved (atomically) only after that.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

PROGRESS_FILE = "training_progress.json"
CONFIG_FILE = "config.yaml"
LATEST = "latest"
LAST_CHECKPOINT_INFO = "last_checkpoint_info.json"  # the paths of the newest checkpoint, for warm starts
TMP_PREFIX = ".tmp-"


class CheckpointError(RuntimeError):
    pass


def checkpoint_name(num_seen_steps: int) -> str:
    return f"step_{num_seen_steps}"


def rank_state_file(folder: Path, rank: int) -> Path:
    return folder / f"rank_{rank}.pt"


def is_complete(folder: Path, require_progress: bool = True) -> bool:
    return (folder / ".metadata").is_file() and (not require_progress or (folder / PROGRESS_FILE).is_file())


def resolve_checkpoint(path: str | Path, require_progress: bool = True) -> Path:
    """A complete checkpoint folder for ``path`` (a folder, the ``latest`` link, or an experiment's checkpoints dir).

    ``require_progress=False`` also accepts a folder of DCP shards alone, as the reference writes them (enough to
    load weights and optimizer state, not to resume a run)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_dir() and not is_complete(path, require_progress) and (path / LATEST).exists():
        path = path / LATEST
    folder = path.resolve()
    if folder.name.startswith(TMP_PREFIX):
        raise CheckpointError(
            f"{path} is a checkpoint that was never completed (its save was interrupted); "
            f"resume from {folder.parent / LATEST} instead"
        )
    if not folder.is_dir() or not is_complete(folder, require_progress):
        expected = f".metadata and {PROGRESS_FILE}" if require_progress else ".metadata"
        raise CheckpointError(f"{path} is not a complete checkpoint folder (expected {expected} in it)")
    return folder


def read_progress(folder: Path) -> dict:
    try:
        return json.loads((folder / PROGRESS_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{folder / PROGRESS_FILE}: cannot read the training progress: {e}") from None


def write_text_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    tmp.write_text(text)
    os.replace(tmp, path)


def point_latest_to(checkpoints_dir: Path, name: str) -> None:
    tmp = checkpoints_dir / f"{TMP_PREFIX}{LATEST}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(name, tmp)
    os.replace(tmp, checkpoints_dir / LATEST)
