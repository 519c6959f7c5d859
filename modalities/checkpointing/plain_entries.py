"""The plain (non-tensor) entries of a DCP checkpoint folder, read without torch and without running its code.

A DCP folder stores each non-tensor value of the state (a scheduler's ``total_steps``, a parameter group's
``initial_lr``) as its own ``torch.save`` archive inside a shard, at an offset its ``.metadata`` records. Here the
metadata is read by an unpickler that builds inert records for DCP's classes (and refuses every other global),
and each entry's archive by one that admits plain data only (numbers, strings, lists, tuples, dicts): what
`validate` needs to compare a checkpoint's schedule with a config's, without importing torch. An entry that
holds anything else (a tensor, an object) is left out, never loaded.

The result keeps DCP's flattened names: ``app.lr_scheduler.total_steps``,
``app.lr_scheduler._schedule_phases.0.end_step``, ``app.optimizer.param_groups.<parameter>.initial_lr``.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

from modalities.checkpointing.layout import CheckpointError

# The classes a DCP .metadata file may name: safe_dcp.py admits these (and dtypes), here they are rebuilt as
# inert records.
DCP_METADATA_GLOBALS = {
    ("torch.distributed.checkpoint.metadata", name)
    for name in (
        "Metadata", "TensorStorageMetadata", "BytesStorageMetadata", "ChunkStorageMetadata", "TensorProperties",
        "MetadataIndex", "StorageMeta", "_MEM_FORMAT_ENCODING",
    )
} | {
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
    ("torch.distributed.checkpoint.planner", "LoadItemType"),
    ("torch.distributed.checkpoint.planner", "WriteItemType"),
    ("torch.serialization", "_get_layout"),
    ("torch", "Size"),
    ("pathlib", "PosixPath"),
    ("pathlib", "PurePosixPath"),
    ("pathlib", "WindowsPath"),
    ("pathlib", "PureWindowsPath"),
    ("collections", "OrderedDict"),
}
MAX_ENTRY_BYTES = 1 << 20  # a plain entry is a number or a short list; anything larger is not read


class _Record:
    """An inert stand-in for an object of one of DCP's metadata classes: it keeps what it was built with."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.args = args
        self.__dict__.update(kwargs)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            for part in state:
                if isinstance(part, dict):
                    self.__dict__.update(part)
        elif isinstance(state, dict):
            self.__dict__.update(state)


def _record_class(name: str) -> type:
    return type(name, (_Record,), {})


class _MetadataReader(pickle.Unpickler):
    def __init__(self, file, where: str):
        super().__init__(file)
        self.where = where
        self.classes: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        if (module, name) in DCP_METADATA_GLOBALS or module == "torch":  # torch.float32 and the like: named only
            return self.classes.setdefault((module, name), _record_class(name))
        raise CheckpointError(
            f"{self.where}: refusing to load '{module}.{name}': checkpoint metadata may hold only "
            "torch.distributed.checkpoint's own classes (this file may try to run code; do not use it)"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError(f"{self.where}: refusing a persistent id in checkpoint metadata")


class _PlainData(pickle.Unpickler):
    """Plain data only: no globals but OrderedDict (read as dict), no tensors (persistent ids)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        raise _NotPlain(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise _NotPlain("a tensor")


class _NotPlain(Exception):
    pass


def _metadata(folder: Path) -> Any:
    path = folder / ".metadata"
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the checkpoint metadata: {e.strerror or e}") from None
    try:
        return _MetadataReader(io.BytesIO(data), str(path)).load()
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - truncated or garbage
        raise CheckpointError(f"{path}: not a readable checkpoint metadata file ({type(e).__name__})") from None


def _plain_value(archive: bytes) -> Any:
    """The value of one torch.save archive (a zip holding ``<name>/data.pkl``) that holds plain data."""
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        pickled = next((n for n in zipped.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pickled is None or zipped.getinfo(pickled).file_size > MAX_ENTRY_BYTES:  # none, or inflating beyond
            raise _NotPlain("no data.pkl of a plain value")
        return _PlainData(io.BytesIO(zipped.read(pickled))).load()


def read_plain_entries(
    folder: str | Path, prefixes: tuple[str, ...], suffixes: tuple[str, ...] = ("",)
) -> dict[str, Any]:
    """The non-tensor entries of a DCP checkpoint folder whose names start with one of ``prefixes`` (and end with
    one of ``suffixes``), by flattened name. Entries that are not plain data are left out. Raises CheckpointError
    for a folder whose metadata cannot be read."""
    folder = Path(folder)
    storage = getattr(_metadata(folder), "storage_data", None)
    entries: dict[str, Any] = {}
    for index, info in storage.items() if isinstance(storage, dict) else ():
        fqn = getattr(index, "fqn", None)
        if not isinstance(fqn, str) or not fqn.startswith(prefixes) or not fqn.endswith(suffixes):
            continue
        length, offset = getattr(info, "length", None), getattr(info, "offset", None)
        relative = getattr(info, "relative_path", None)
        if getattr(info, "transform_descriptors", None) or not isinstance(relative, str):
            continue  # compressed or otherwise transformed: not read here
        if not isinstance(length, int) or not isinstance(offset, int) or not 0 < length <= MAX_ENTRY_BYTES:
            continue
        shard = (folder / relative).resolve()
        if shard.parent != folder.resolve():
            continue  # a shard outside the folder: not ours to read
        try:
            with open(shard, "rb") as file:
                file.seek(offset)
                entries[fqn] = _plain_value(file.read(length))
        except (OSError, zipfile.BadZipFile, _NotPlain, pickle.UnpicklingError, EOFError, ValueError, TypeError,
                KeyError, AttributeError, IndexError):
            continue
    return entries


def by_parameter(entries: dict[str, Any], prefix: str) -> dict[str, dict[str, Any]]:
    """``<prefix><parameter name>.<field>`` entries (the optimizer's groups, flattened by parameter, whose names
    hold dots themselves) as {parameter name: {field: value}}."""
    groups: dict[str, dict[str, Any]] = {}
    for name, value in entries.items():
        if name.startswith(prefix) and "." in name[len(prefix) :]:
            parameter, field = name[len(prefix) :].rsplit(".", 1)
            groups.setdefault(parameter, {})[field] = value
    return groups


def nest(entries: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The entries under ``prefix`` (``app.lr_scheduler.``) as the nested value they were flattened from: a
    mapping, whose members numbered 0..n-1 are a list (``_schedule_phases.0.end_step``)."""
    root: dict[str, Any] = {}
    for name, value in entries.items():
        if not name.startswith(prefix):
            continue
        node = root
        *parents, last = name[len(prefix) :].split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[last] = value
    return _lists(root)


def _lists(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    items = {key: _lists(child) for key, child in value.items()}
    if items and all(key.isdigit() for key in items) and sorted(map(int, items)) == list(range(len(items))):
        return [items[str(i)] for i in range(len(items))]
    return items


class _TensorStub:
    """Where a tensor was: its data is not read."""

    def __init__(self, *args: Any, **kwargs: Any):
        pass


class _WithoutTensors(pickle.Unpickler):
    """A torch.save archive's data.pkl with every tensor replaced by a stub and nothing else admitted."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        if module in ("torch._utils", "torch._tensor") and name.startswith("_rebuild"):
            return _TensorStub
        if module == "torch" and (name.endswith("Storage") or name in _DTYPE_NAMES):
            return _TensorStub
        raise _NotPlain(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        return _TensorStub()


_DTYPE_NAMES = {"float32", "float16", "bfloat16", "float64", "int64", "int32", "uint8", "int8", "bool"}


def read_optimizer_param_groups(path: str | Path) -> list[dict] | None:
    """The ``param_groups`` of a full optimizer state dict saved with torch.save (the reference's FSDP1
    ``*-optimizer-*.bin``), read without torch and without reading its tensors; None where it cannot be."""
    try:
        with zipfile.ZipFile(path) as zipped:
            pickled = next((n for n in zipped.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if pickled is None or zipped.getinfo(pickled).file_size > 64 * MAX_ENTRY_BYTES:
                return None
            state = _WithoutTensors(io.BytesIO(zipped.read(pickled))).load()
    except (OSError, zipfile.BadZipFile, _NotPlain, pickle.UnpicklingError, EOFError, ValueError, TypeError,
            KeyError, AttributeError, IndexError):
        return None
    groups = state.get("param_groups") if isinstance(state, dict) else None
    if not isinstance(groups, list) or not all(isinstance(group, dict) for group in groups):
        return None
    return [{key: value for key, value in group.items() if key != "params"} for group in groups]
