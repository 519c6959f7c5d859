"""Reading torch.distributed.checkpoint folders without running code from them.

torch reads a checkpoint's ``.metadata`` with plain ``pickle`` and every non-tensor entry of its shards with
``torch.load(weights_only=False)``, so a downloaded checkpoint can run its author's code on load. Here the
metadata goes through an unpickler that admits only DCP's own metadata classes, and non-tensor entries load with
``weights_only=True`` (plain numbers, strings, lists, dicts). A file that needs anything else is refused with a
message naming it.
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint import DefaultLoadPlanner, FileSystemReader
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.metadata import Metadata, StorageMeta

from modalities.checkpointing.layout import CheckpointError
from modalities.checkpointing.plain_entries import DCP_METADATA_GLOBALS

_ALLOWED_GLOBALS = DCP_METADATA_GLOBALS


class _MetadataUnpickler(pickle.Unpickler):
    def __init__(self, file, where: str):
        super().__init__(file)
        self.where = where

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise CheckpointError(
            f"{self.where}: refusing to load '{module}.{name}': checkpoint metadata may hold only "
            "torch.distributed.checkpoint's own classes (this file may try to run code; do not use it)"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError(f"{self.where}: refusing a persistent id in checkpoint metadata")


def read_metadata(folder: str | Path) -> Metadata:
    """A checkpoint folder's ``.metadata``, read without running code."""
    path = Path(folder) / ".metadata"
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the checkpoint metadata: {e}") from None
    try:
        metadata = _MetadataUnpickler(io.BytesIO(data), str(path)).load()
    except CheckpointError:
        raise
    except Exception as e:  # truncated, garbage, or a class of the allowed ones given nonsense arguments
        raise CheckpointError(f"{path}: not a readable checkpoint metadata file ({type(e).__name__}: {e})") from None
    if not isinstance(metadata, Metadata):
        raise CheckpointError(f"{path}: holds a {type(metadata).__name__}, not checkpoint metadata")
    return metadata


class SafeFileSystemReader(FileSystemReader):
    """FileSystemReader whose metadata is read by :func:`read_metadata`."""

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        if kwargs.get("rank") is not None:
            raise CheckpointError(f"{self.path}: per-rank metadata files are not supported")
        metadata = read_metadata(self.path)
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


class SafeLoadPlanner(DefaultLoadPlanner):
    """DefaultLoadPlanner whose non-tensor entries load with weights_only=True, and which finds an entry the
    checkpoint stores under another name of the same tensor (see checkpointing/compat.py)."""

    def set_up_planner(self, state_dict, metadata=None, is_coordinator: bool = False) -> None:
        super().set_up_planner(state_dict, metadata, is_coordinator)
        if metadata is None or not self.flatten_state_dict:
            return
        for ours, theirs in saved_aliases(list(self.state_dict), metadata.state_dict_metadata).items():
            self.state_dict[theirs] = self.state_dict.pop(ours)
            self.mappings[theirs] = self.mappings.pop(ours)

    def load_bytes(self, read_item, value: io.BytesIO) -> None:
        try:
            obj = torch.load(value, weights_only=True)
        except Exception as e:
            raise CheckpointError(
                f"checkpoint entry '{read_item.dest_index.fqn}' holds something other than plain data "
                f"(refused: {str(e).splitlines()[0]})"
            ) from None
        if self.flatten_state_dict:
            from torch.distributed.checkpoint._traverse import set_element

            set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], obj)
        else:
            self.state_dict[read_item.dest_index.fqn] = obj


def saved_aliases(our_keys: Any, saved_keys: Any) -> dict[str, str]:
    """Our flattened key -> the checkpoint's, for parameters it holds under another name (``app.model.<fqn>``
    and the optimizer's ``app.optimizer.state.<fqn>.<field>``)."""
    from modalities.checkpointing.compat import fit_state_dict_keys

    saved_keys = set(saved_keys)
    aliases: dict[str, str] = {}
    for prefix, has_field in (("app.model.", False), ("app.optimizer.state.", True)):
        ours = [k[len(prefix) :] for k in our_keys if k.startswith(prefix) and k not in saved_keys]
        if not ours:
            continue
        theirs = [k[len(prefix) :] for k in saved_keys if k.startswith(prefix)]
        if not has_field:
            fitted = fit_state_dict_keys({t: t for t in theirs}, ours)  # our name -> saved name
            aliases.update({prefix + o: prefix + fitted[o] for o in ours if o in fitted})
            continue
        their_params = {t.rsplit(".", 1)[0] for t in theirs}
        fitted = fit_state_dict_keys({p: p for p in their_params}, {o.rsplit(".", 1)[0] for o in ours})
        for o in ours:
            param, field = o.rsplit(".", 1)
            if param in fitted:
                aliases[prefix + o] = f"{prefix}{fitted[param]}.{field}"
    return {ours: theirs for ours, theirs in aliases.items() if theirs in saved_keys}


def safe_load(state_dict: dict, folder: str | Path) -> None:
    """``dcp.load`` that runs no code from the folder. A Stateful that can store its optimizer in two layouts
    (``optimizer_layout``) is told the checkpoint's first; one with ``prepare_load``/``end_load`` is told the
    folder and its keys before, and that the load is over after."""
    import torch.distributed.checkpoint as dcp

    from modalities.checkpointing.checksums import verify_checksums

    verify_checksums(folder)
    saved = saved_keys(folder)  # reads the metadata here, so a refused one is reported as itself
    app_state = state_dict.get("app") if isinstance(state_dict, dict) else None
    if hasattr(app_state, "optimizer_layout"):
        app_state.optimizer_layout = optimizer_layout_of(saved)
    if hasattr(app_state, "prepare_load"):  # it reads what it does not ask of DCP (the scheduler's state) itself
        app_state.prepare_load(folder, saved)
    try:
        dcp.load(state_dict, storage_reader=SafeFileSystemReader(str(folder)), planner=SafeLoadPlanner())
    except CheckpointError:
        raise
    except (Exception, CheckpointException) as e:  # a truncated or garbage shard, or another model's
        raise damaged(folder, e) from None
    finally:
        if hasattr(app_state, "end_load"):
            app_state.end_load()


def damaged(folder: str | Path, error: BaseException) -> CheckpointError:
    """The message for a checkpoint that DCP could not read, from the cause (DCP wraps each rank's exception in a
    report with its traceback)."""
    if isinstance(error, CheckpointException) and error.failures:
        cause = next(iter(error.failures.values()))[0]
        if isinstance(cause, CheckpointError):
            return cause
        error = cause
    first = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
    return CheckpointError(
        f"{folder}: cannot be loaded ({type(error).__name__}: {first[:500]}); a file of it is truncated or damaged, "
        "or it was saved from another model"
    )


FLATTENED, GROUPED = "flattened", "grouped"


def optimizer_layout_of(saved_keys) -> str:
    """How a checkpoint stores optimizer state: by group index (``app.optimizer.param_groups.0.lr`` beside the
    group's ``...param_groups.0.params``, what we wrote before 0.2) or flattened by parameter name
    (``app.optimizer.param_groups.<fqn>.lr``, the reference's and ours now). Only the grouped layout stores a
    group's ``params``; the index alone would not tell, as parameter names may start with a digit too."""
    grouped = re.compile(r"app\.optimizer\.param_groups\.\d+\.params$")
    return GROUPED if any(grouped.match(key) for key in saved_keys) else FLATTENED


def saved_keys(folder: str | Path) -> set[str]:
    """The flattened keys a checkpoint holds (e.g. ``app.model.transformer.wte.weight``)."""
    return set(read_metadata(folder).state_dict_metadata)
