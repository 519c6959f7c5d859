"""The experiment folder: resolved config and results beside each other, claimed by one run at a time."""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from pathlib import Path

RESULTS_FILE = "results.jsonl"
RESOLVED_CONFIG_FILE = "config.yaml"
LOCK_FILE = ".run.lock"


class ExperimentInUse(RuntimeError):
    pass


class ExperimentClaim:
    """An experiment folder held by this process: a POSIX lock on its .run.lock, released when the process ends
    (also by a crash or kill), so a crashed run never blocks its own restart."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / LOCK_FILE
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        import fcntl

        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EAGAIN):
                holder = _read_holder(path)
                self.release()
                raise ExperimentInUse(
                    f"{self.folder} is in use by another run ({holder}); wait for it to end, or choose another "
                    "--experiment-id"
                ) from None
            # A file system without locks (some network mounts): go on unguarded rather than not at all.
            print(f"modalities: warning: cannot lock {path} ({e.strerror}); two runs with this experiment id "
                  "would not be told apart", flush=True)
            return
        holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(holder).encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None


def _read_holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text())
        return f"pid {holder['pid']} on {holder['host']}, since {holder['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its process is unknown"


def prepare_experiment_folder(root: Path, experiment_id: str, config_text: str) -> Path:
    folder = Path(root) / experiment_id
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / RESOLVED_CONFIG_FILE
    tmp = folder / f".tmp-{RESOLVED_CONFIG_FILE}"
    tmp.write_text(config_text)
    tmp.replace(target)
    return folder


def existing_run_in(root: Path, experiment_id: str) -> Path | None:
    """The results file of an earlier run in this experiment folder, if there is one."""
    results = Path(root) / experiment_id / RESULTS_FILE
    return results if results.is_file() else None
