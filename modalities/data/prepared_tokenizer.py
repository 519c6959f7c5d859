"""A Hugging Face tokenizer for packing, without importing transformers (or torch) when it can be helped.

Packing needs three things from a tokenizer: its size, the id of the EOD token, and the `tokenizers` backend
exactly as transformers configures it (the tokenizer class may rebuild parts of it, add special tokens, set
truncation and padding). The backend is what ``PreTrainedHFTokenizer.batch_encoder`` hands to the packer as
JSON. Computing it takes transformers' import and ``AutoTokenizer``, about 2 s before the first document; so the
first time a tokenizer is used for packing, that JSON (and the size and special tokens) is kept in a cache
keyed by the content of the tokenizer's files, its settings here and the transformers and tokenizers versions.
Every later run loads it with `tokenizers` alone. Whatever changes any of these makes another entry: the cache
can only be cold, never stale. It is plain JSON, never code.

The cache folder: $MODALITIES_CACHE_DIR, else $XDG_CACHE_HOME/modalities, else ~/.cache/modalities; a folder
that cannot be written only means no caching.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from modalities.data.errors import DataError
from modalities.data.pbin_info import files_digest
from modalities.data.tokenizers import HFBatchEncoder, PreTrainedHFTokenizer, TokenizerWrapper, hf_identity

# 3: the backend of padding "max_length" without max_length as transformers reads it (not padded)
RECORD_VERSION = 3


def cache_dir() -> Path:
    """$MODALITIES_CACHE_DIR if set and not empty, else $XDG_CACHE_HOME/modalities (likewise), else
    ~/.cache/modalities."""
    explicit = os.environ.get("MODALITIES_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "modalities"


def _package_version(name: str) -> str:
    """The installed version of ``name``, without importing it. The dist-info folder beside the package says it
    at the cost of one directory listing; importlib.metadata (about 30 ms: it scans every path entry) answers
    where that is not one clear folder (an editable install)."""
    from importlib.util import find_spec

    try:
        spec = find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return "absent"
    if spec.submodule_search_locations:
        site = Path(next(iter(spec.submodule_search_locations))).parent
        found = list(site.glob(f"{name}-*.dist-info"))
        if len(found) == 1:
            return found[0].name[len(name) + 1 : -len(".dist-info")]
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


def fingerprint(files: str, settings: dict[str, Any]) -> str:
    """What the prepared backend depends on: the tokenizer's files (``files``, their files_digest), its settings,
    and the versions of the libraries that turn them into a backend."""
    import hashlib

    versions = {name: _package_version(name) for name in ("transformers", "tokenizers")}
    key = {"record": RECORD_VERSION, "files": files, "settings": settings, **versions}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


class PreparedHFTokenizer(TokenizerWrapper):
    """A PreTrainedHFTokenizer's backend as transformers prepared it, loaded with `tokenizers` alone. Encodes
    exactly as the transformers-loaded tokenizer's batch_encoder does (the same backend JSON)."""

    def __init__(self, path: Path, record: dict, settings: dict, backend_file: Path, files: str):
        self.path = path
        self.settings = settings
        self.files = files  # files_digest of the tokenizer folder: hashed once, for the cache key and the identity
        self.backend_file = backend_file
        self._vocab_size = int(record["vocab_size"])
        self._special_token_ids = dict(record["special_token_ids"])
        self._backend = None

    def identity(self) -> dict:
        return hf_identity(self.path, self.settings, self.files)

    def _tokenizer(self):
        if self._backend is None:
            from tokenizers import Tokenizer

            try:
                self._backend = Tokenizer.from_file(str(self.backend_file))
            except Exception as e:  # noqa: BLE001 - tokenizers raises its own Exception for a bad file
                raise DataError(
                    f"{self.backend_file}: the prepared tokenizer cannot be read ({e}); delete "
                    f"{self.backend_file.parent} and pack again"
                ) from None
        return self._backend

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    def get_token_id(self, token: str) -> int:
        token_id = self._tokenizer().token_to_id(token)
        if token_id is None:
            raise DataError(f"{self.path}: token {token!r} is not a single token of this tokenizer's vocabulary")
        return token_id

    @property
    def special_token_ids(self) -> dict[str, int]:
        return dict(self._special_token_ids)

    def tokenize_batch(self, texts):
        return self.batch_encoder()(list(texts))

    def decode(self, token_ids) -> str:
        return self._tokenizer().decode([int(t) for t in token_ids], skip_special_tokens=False)

    def batch_encoder(self, special_tokens_as_text: bool = False) -> HFBatchEncoder:
        # The packer asks once, after get_token_id built the tokenizer: the encoder takes that one over
        # (no second parse of the JSON); a later call gets its own.
        backend, self._backend = self._tokenizer(), None
        return HFBatchEncoder(None, special_tokens_as_text, tokenizer=backend)


def hf_tokenizer_for_packing(
    pretrained_model_name_or_path: str,
    truncation: bool = False,
    padding: bool | str = False,
    max_length: int | None = None,
    special_tokens: dict | None = None,
) -> TokenizerWrapper:
    """The tokenizer/pretrained_hf_tokenizer of these settings, for packing: from the cache when it holds it
    (no transformers import), else loaded through transformers and kept for the next time. An entry is a folder
    <fingerprint>/ with record.json (size, special tokens) and tokenizer.json (the backend)."""
    from modalities.interop.hub import HubResolutionError, resolve_pretrained

    settings = {"truncation": truncation, "padding": padding, "max_length": max_length, "special_tokens": special_tokens}
    try:
        path = resolve_pretrained(pretrained_model_name_or_path)
        files = files_digest(path)
        key = fingerprint(files, settings)
    except (HubResolutionError, OSError):
        key = None  # the transformers route below names what is wrong
    entry = cache_dir() / "tokenizers" / key if key else None
    if entry is not None and (entry / "record.json").is_file() and (entry / "tokenizer.json").is_file():
        try:
            record = json.loads((entry / "record.json").read_text(encoding="utf-8"))
            if record.get("record") == RECORD_VERSION:
                prepared = PreparedHFTokenizer(path, record, settings, entry / "tokenizer.json", files)
                prepared._tokenizer()  # read now (the packer needs it next), so that a broken file is rebuilt
                return prepared
        except (OSError, ValueError, KeyError, TypeError, DataError):
            pass  # an unreadable entry is rebuilt
    tokenizer = PreTrainedHFTokenizer(pretrained_model_name_or_path, truncation, padding, max_length, special_tokens)
    if entry is not None:
        record = {
            "record": RECORD_VERSION,
            "source": str(path),
            "vocab_size": tokenizer.vocab_size,
            "special_token_ids": tokenizer.special_token_ids,
        }
        _write_entry(entry, json.dumps(record, ensure_ascii=False), tokenizer.batch_encoder().tokenizer_json)
    return tokenizer


def _write_entry(entry: Path, record: str, backend: str) -> None:
    """Both files into a temporary folder, renamed into place: an entry is whole or absent."""
    import shutil

    tmp = entry.with_name(f".tmp-{os.getpid()}-{entry.name}")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "tokenizer.json").write_text(backend, encoding="utf-8")
        (tmp / "record.json").write_text(record, encoding="utf-8")
        if entry.exists():
            shutil.rmtree(entry)  # a broken entry (a folder that was checked above and failed)
        tmp.rename(entry)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # no cache: the next run loads through transformers again
