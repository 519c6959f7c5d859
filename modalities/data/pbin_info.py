"""The info file beside a .pbin we write: which tokenizer made it, and what it holds.

``corpus.pbin`` gets ``corpus.pbin.info.json``: the tokenizer's identity (kind, where it was loaded from, a
SHA-256 over the files that define its ids, its settings, its number of ids, the EOD token and id), the token width, documents and
tokens, and where the documents came from (the JSONL, the index slice of a shard, the jq pattern). The .pbin
itself stays byte-identical to the reference's; readers that do not know the info file never see it.

`validate` reads it (training/contract/model.py) to catch a model whose vocab_size is smaller than the
tokenizer's, or a config whose tokenizer is not the one that packed its data; `modalities data inspect` shows
it. Plain JSON, torch- and numpy-free, written to a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from modalities.data.errors import DataError

INFO_SUFFIX = ".info.json"
FORMAT = "modalities.pbin.info/1"
# Files of a model folder that are weights, not tokenizer: left out of a tokenizer's digest.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".gguf", ".distcp")
MAX_DIGESTED_FILE_BYTES = 256 * 2**20


def info_path(pbin_path: str | os.PathLike) -> Path:
    """``<name>.info.json`` beside the file (``c.pbin`` -> ``c.pbin.info.json``)."""
    path = Path(pbin_path)
    return path.with_name(path.name + INFO_SUFFIX)


def files_digest(path: Path, extra: Any = None) -> str:
    """SHA-256 over a tokenizer file, or a folder's files (names and content; weights and files over 256 MB
    left out), and ``extra`` (settings) as JSON.

    A folder's files are taken in name order, its subfolders not at all: the digest changes with a file's name
    or content and with ``extra``, not with the folder's own place or name, nor with weights (WEIGHT_SUFFIXES)
    or files of more than MAX_DIGESTED_FILE_BYTES (a file of exactly that size is read)."""
    import hashlib  # here, not at the top: loading it is ~1% of a `validate` that digests no tokenizer

    digest = hashlib.sha256(json.dumps(extra, sort_keys=True, default=str).encode())
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    for file in files:
        if file.suffix in WEIGHT_SUFFIXES or file.stat().st_size > MAX_DIGESTED_FILE_BYTES:
            continue
        digest.update(file.name.encode() + b"\0")
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def write_info(pbin_path: str | os.PathLike, record: dict[str, Any]) -> Path:
    """Write the info file of ``pbin_path`` (``record`` plus the format tag, the time and the modalities
    version), through a temporary name; returns its path. An older info file is replaced."""
    from modalities import __version__

    target = info_path(pbin_path)
    data = {"format": FORMAT, **record, "written": time.strftime("%Y-%m-%dT%H:%M:%S"), "modalities": __version__}
    tmp = target.with_name(f".tmp-{target.name}")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(target)
    return target


def read_info(pbin_path: str | os.PathLike) -> dict[str, Any] | None:
    """The info file of ``pbin_path``, or None when there is none (files packed elsewhere). DataError naming
    the file when it is there but not ours or not JSON."""
    path = info_path(pbin_path)
    if not os.path.isfile(path):  # False also for a name the system refuses (too long, a NUL in it)
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read the info file ({e}); delete it or pack the data again") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DataError(f"{path}: not a {FORMAT} info file; delete it or pack the data again")
    return data


def same_tokenizer(a: dict | None, b: dict | None) -> bool | None:
    """Whether two tokenizer identities name the same tokenizer (equal fingerprints); None when one of them is
    unknown (None, empty, or without a fingerprint)."""
    if not a or not b or not a.get("fingerprint") or not b.get("fingerprint"):
        return None
    return a["fingerprint"] == b["fingerprint"]


def describe_tokenizer(identity: dict | None) -> str:
    """One line for messages: ``<kind> tokenizer <source> (<n> ids, EOD <token> = <id>)``, "?" for a kind or
    source not recorded, the parenthesis only with a vocab_size (and the EOD part only with an eod_token);
    "an unrecorded tokenizer" for None or an empty identity."""
    if not identity:
        return "an unrecorded tokenizer"
    text = f"{identity.get('kind', '?')} tokenizer {identity.get('source', '?')}"
    if identity.get("vocab_size") is not None:
        text += f" ({identity['vocab_size']:,} ids"
        if identity.get("eod_token") is not None:
            text += f", EOD {identity['eod_token']!r} = {identity.get('eod_id')}"
        text += ")"
    return text


def common_tokenizer(sources: list[str | os.PathLike]) -> dict | None:
    """The tokenizer identity the info files of ``sources`` share, before combining them into one file:
    DataError naming the first file and one whose tokenizer differs from its (their ids mean different tokens);
    None when some file has no info file (then the result gets none either; the others are still compared) or
    when there are no sources. An identity without a fingerprint matches any."""
    known = []
    missing = False
    for source in sources:
        info = read_info(source)
        if info is None:
            missing = True
        else:
            known.append((source, info.get("tokenizer")))
    identity = _check_known(known)
    return None if missing else identity


def _check_known(known: list[tuple[Any, dict | None]]) -> dict | None:
    for path, identity in known[1:]:
        if same_tokenizer(known[0][1], identity) is False:
            raise DataError(
                f"{known[0][0]} was packed with {describe_tokenizer(known[0][1])} and {path} with "
                f"{describe_tokenizer(identity)}: their ids mean different tokens, so they cannot go into one file; "
                "pack them with the same tokenizer"
            )
    return known[0][1] if known else None


def write_derived_info(output: str | os.PathLike, tokenizer: dict | None, token_width: int, documents: int,
                       tokens: int, source: dict[str, Any]) -> None:
    """The info file of a file made from others (merged, shuffled, a chunk), when their tokenizer is known; an
    older info file of ``output`` is removed otherwise, so it cannot describe the new content."""
    if tokenizer is None:
        info_path(output).unlink(missing_ok=True)
        return
    write_info(output, {"tokenizer": tokenizer, "token_width": token_width, "documents": documents, "tokens": tokens,
                        "source": source})


def recorded_tokenizer_path(info: dict | None) -> str | None:
    """The tokenizer an info file names, when it is a file or folder on this machine (to decode with)."""
    identity = (info or {}).get("tokenizer") or {}
    source = identity.get("source")
    if identity.get("kind") in ("huggingface", "sentencepiece") and isinstance(source, str) and Path(source).exists():
        return source
    return None
