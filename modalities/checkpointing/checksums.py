"""A SHA-256 of every file of a checkpoint, recorded when it is saved and checked before it is loaded, so a file
damaged on disk or in a copy is named instead of loading silently (flipped bytes in a shard would otherwise
load and end the run in a NaN a step later).

The digests are written to ``checksums.json`` in the checkpoint folder. With several ranks each rank hashes (and
later checks) every world_size-th file, so the cost is spread like the I/O. This is a check against damage, not
tampering: whoever can change a file can change ``checksums.json`` too (checkpoints are read without running
code anyway; see safe_dcp.py). Checkpoints without ``checksums.json`` (older ones, the reference's) load
unchecked. ``MODALITIES_SKIP_CHECKSUMS=1`` skips the check (e.g. for a checkpoint of many GB read once).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from modalities.checkpointing.layout import CheckpointError, write_text_atomically

CHECKSUM_FILE = "checksums.json"
SKIP_ENV = "MODALITIES_SKIP_CHECKSUMS"
_CHUNK = 8 * 1024 * 1024


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _rank_and_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _gather(item):
    """Every rank's item, on every rank (the item itself without a process group)."""
    import torch.distributed as dist

    rank, world = _rank_and_world()
    if world == 1:
        return [item]
    gathered = [None] * world
    dist.all_gather_object(gathered, item)
    return gathered


def record_checksums(folder: Path) -> None:
    """Collective: hash the files of a fully written checkpoint folder and write checksums.json (rank 0)."""
    rank, world = _rank_and_world()
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != CHECKSUM_FILE)
    mine = {name: file_digest(folder / name) for name in names[rank::world]}
    digests: dict[str, str] = {}
    for part in _gather(mine):
        digests.update(part)
    if rank == 0:
        write_text_atomically(folder / CHECKSUM_FILE, json.dumps({"sha256": digests}, indent=1, sort_keys=True))


def _problems(folder: Path, recorded: dict[str, str], names: list[str]) -> list[str]:
    problems = []
    for name in names:
        path = folder / name
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif file_digest(path) != recorded[name]:
            problems.append(f"{path} has changed since it was saved (its SHA-256 differs from {CHECKSUM_FILE})")
    return problems


def verify_checksums(folder: str | Path) -> None:
    """Collective when a process group is up: check the checkpoint's files against checksums.json, each rank a
    share of them; every rank raises the same CheckpointError if any file differs or is missing."""
    folder = Path(folder)
    record = folder / CHECKSUM_FILE
    if os.environ.get(SKIP_ENV) == "1" or not record.is_file():
        return
    try:
        recorded = json.loads(record.read_text())["sha256"]
        if not isinstance(recorded, dict) or not all(isinstance(v, str) for v in recorded.values()):
            raise ValueError("not a mapping of file names to digests")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{record}: unreadable ({e}); the checkpoint folder is damaged") from None
    rank, world = _rank_and_world()
    names = sorted(recorded)
    for name in names:
        if Path(name).name != name:
            raise CheckpointError(f"{record}: names a file outside the checkpoint folder ({name!r})")
    problems = [p for part in _gather(_problems(folder, recorded, names[rank::world])) for p in part]
    if problems:
        raise CheckpointError(
            "the checkpoint is damaged: " + "; ".join(problems) + f". Use another checkpoint (or set {SKIP_ENV}=1 "
            "to load it anyway)"
        )
