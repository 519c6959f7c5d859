"""The experiment folder: resolved config and results beside each other, claimed by one run at a time."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import time
from pathlib import Path

from modalities.logging.results_file import RESULTS_FILE

RESOLVED_CONFIG_FILE = "config.yaml"
CONFIG_SOURCES_DIR = "config_sources"  # the files the config was composed from, as read
CONFIG_SOURCES_FILE = "config_sources.yaml"  # `extends:` them again, in the order the run was given them
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


def save_config_sources(folder: Path, files: list[tuple[str, str]], given: list[str], flags: list[str] = ()) -> None:
    """Copy the files a config was composed from into ``folder``/config_sources/, keeping their layout
    relative to each other (so their `extends` still find each other), and write config_sources.yaml, which
    extends the ``given`` ones in order: ``modalities validate|diff <folder>/config_sources.yaml`` composes the
    run's config again. ``files``: (absolute location, text); ``flags``: the run's --set flags (a comment:
    config.yaml holds their effect). A resume replaces the copies with those of the run that resumes."""
    folder = Path(folder)
    common = os.path.commonpath([os.path.dirname(location) for location, _ in files])
    tmp = folder / f".tmp-{CONFIG_SOURCES_DIR}"
    shutil.rmtree(tmp, ignore_errors=True)
    for location, text in files:
        target = tmp / os.path.relpath(location, common)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    final = folder / CONFIG_SOURCES_DIR
    if final.exists():
        shutil.rmtree(final)
    tmp.replace(final)
    lines = [
        "# The files this run's config was composed from (copied, as they were read, into config_sources/).",
        "# `modalities validate` or `modalities diff` on this file composes them again; config.yaml is the run's",
        "# resolved config." + (" The run's --set flags (in config.yaml, not here):" if flags else ""),
        *(f"#   --set {flag}" for flag in flags),
        "extends:",
        *(f"  - {json.dumps(CONFIG_SOURCES_DIR + '/' + Path(os.path.relpath(g, common)).as_posix())}" for g in given),
    ]
    manifest = folder / CONFIG_SOURCES_FILE
    tmp_manifest = folder / f".tmp-{CONFIG_SOURCES_FILE}"
    tmp_manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp_manifest.replace(manifest)


def existing_run_in(root: Path, experiment_id: str) -> Path | None:
    """The results file of an earlier run in this experiment folder, if there is one."""
    results = Path(root) / experiment_id / RESULTS_FILE
    return results if results.is_file() else None
