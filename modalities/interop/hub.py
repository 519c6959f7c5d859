"""Hugging Face hub ids (``gpt2``, ``org/name``) where a local folder is expected, resolved the way transformers
resolves them: through the Hugging Face cache (``HF_HUB_CACHE``, ``HF_HOME``), never downloading at run time.

A path that exists is used as it is. Anything else that looks like a hub id is looked up in the cache (what an
earlier ``huggingface-cli download`` or ``from_pretrained`` on a machine with internet put there); a model not
in the cache is an error that says how to get it there. Torch-free, and huggingface_hub is imported only when a
name is not a local path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


class HubResolutionError(FileNotFoundError):
    pass


_MAX_REPO_ID = 96 * 2 + 1  # the hub's names: an owner and a repository of at most 96 characters each


def looks_like_repo_id(name: str) -> bool:
    return (len(name) <= _MAX_REPO_ID and bool(_REPO_ID.match(name))
            and not name.endswith((".json", ".model", ".pt", ".bin", ".yaml")))


def resolve_pretrained(name_or_path: str | os.PathLike) -> Path:
    """A local folder (or file) for a path or a hub id in the local Hugging Face cache."""
    path = Path(name_or_path)
    if os.path.exists(path):  # False, not an error, for a name the system refuses (too long, a NUL in it)
        return path
    name = str(name_or_path)
    if not looks_like_repo_id(name):
        raise HubResolutionError(f"{name}: no such file or folder")
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:  # pragma: no cover - a dependency of transformers
        raise HubResolutionError(f"{name}: not a local path, and huggingface_hub is not installed") from None
    try:
        return Path(snapshot_download(name, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError) as e:
        cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "~/.cache/huggingface"
        raise HubResolutionError(
            f"{name}: not a local path, and not in the Hugging Face cache ({cache}): nothing is downloaded at run "
            f"time; fetch it once where there is internet (`huggingface-cli download {name}`, with the same "
            f"HF_HUB_CACHE), or give a local folder ({type(e).__name__})"
        ) from None
