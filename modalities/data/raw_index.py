"""The raw index (.idx) of a JSONL file: per line, its byte offset and byte length (without the newline).

The file is a pickled list of ``(offset, length)`` tuples, as Modalities writes it, so indices move between the
two tools both ways.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modalities.data.errors import DataError
from modalities.data.safe_pickle import dump_offsets_index, load_offsets_index


def default_index_path(jsonl_path: str | os.PathLike) -> Path:
    """The JSONL path with its last suffix replaced by .idx (``corpus.jsonl`` -> ``corpus.idx``; ``corpus`` ->
    ``corpus.idx``)."""
    path = Path(jsonl_path)
    return path.with_suffix(".idx")


@dataclass
class RawIndexResult:
    index_path: Path
    num_documents: int
    skipped_lines: list[int]  # 1-based line numbers of malformed lines that were skipped


def create_raw_index(
    jsonl_path: str | os.PathLike,
    index_path: str | os.PathLike | None = None,
    skip_malformed: bool = False,
    overwrite: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> RawIndexResult:
    """Index every line of a JSONL file; a line that is not valid JSON stops with its line number unless
    ``skip_malformed``. ``on_progress(bytes_read, documents)`` is called every 8192 lines and once at the end.

    An entry is (byte offset of the line, its length without the line end, ``\n`` or ``\r\n``); a last line
    without a newline is indexed too. An empty line is not JSON. An empty file gives an empty index. DataError
    for a missing file, an existing index without ``overwrite``, or a malformed line (``file:line``); the index
    is written to a temporary name and renamed, so a failed run leaves none."""
    src = Path(jsonl_path)
    if not src.is_file():
        raise DataError(f"{src}: JSONL file not found")
    dst = Path(index_path) if index_path is not None else default_index_path(src)
    if dst.exists() and not overwrite:
        raise DataError(f"{dst}: index file already exists; remove it or pass --overwrite")
    offsets: list[int] = []
    lengths: list[int] = []
    skipped: list[int] = []
    position = 0
    with src.open("rb") as f:
        for line_number, line in enumerate(f, start=1):
            length = len(line)
            content = line.rstrip(b"\r\n")
            try:
                json.loads(content)
            except ValueError as e:  # JSONDecodeError and UnicodeDecodeError both derive from ValueError
                if not skip_malformed:
                    raise DataError(
                        f"{src}:{line_number}: not a valid JSON line ({_short(e)}); fix the line or pass "
                        "--skip-malformed to leave it out of the index"
                    ) from None
                skipped.append(line_number)
            else:
                offsets.append(position)
                lengths.append(len(content))
            position += length
            if on_progress is not None and line_number % 8192 == 0:
                on_progress(position, len(offsets))
    if on_progress is not None:
        on_progress(position, len(offsets))
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(dump_offsets_index(np.array(offsets, dtype=np.int64), np.array(lengths, dtype=np.int64)))
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return RawIndexResult(index_path=dst, num_documents=len(offsets), skipped_lines=skipped)


def _short(error: Exception) -> str:
    text = str(error)
    return text if len(text) < 120 else text[:117] + "..."


def read_raw_index(index_path: str | os.PathLike, jsonl_path: str | os.PathLike | None = None) -> np.ndarray:
    """Load an .idx file as an ``(n, 2)`` array; with ``jsonl_path``, check every entry lies inside that file (an
    entry ending exactly at the file's end does; one byte past is a DataError naming the entry). DataError for
    a missing index or one that is not a pickled list of (offset, length) (see safe_pickle)."""
    path = Path(index_path)
    if not path.is_file():
        raise DataError(f"{path}: index file not found; create it with `modalities data create_raw_index`")
    index = load_offsets_index(path.read_bytes(), str(path))
    if jsonl_path is not None and len(index):
        size = Path(jsonl_path).stat().st_size
        ends = index[:, 0] + index[:, 1]
        bad = np.flatnonzero(ends > size)
        if len(bad):
            i = int(bad[0])
            raise DataError(
                f"{path}: entry {i} (offset {index[i, 0]}, length {index[i, 1]}) lies beyond the end of {jsonl_path} "
                f"({size} bytes); the index belongs to another file; recreate it with `modalities data create_raw_index`"
            )
    return index

