"""Shuffling and chunking corpora as the reference does, so that the same seed gives the same files.

- ``shuffle_tokenized_data``: the documents of a .pbin in the order ``random.Random(seed).shuffle`` gives.
- ``shuffle_jsonl_data``: the lines of a JSONL file, likewise.
- ``create_shuffled_dataset_chunk`` / ``create_shuffled_jsonl_dataset_chunk``: chunk ``i`` of ``N`` of each input
  file (contiguous document ranges, the first ``n % N`` chunks one longer), concatenated and shuffled with
  ``numpy.random.default_rng(seed)``, where the seed is derived from (global_seed, chunk id) by SHA-256.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from pathlib import Path

import numpy as np

from modalities.data.errors import DataError
from modalities.data.pbin import PackedFile, PackedFileWriter
from modalities.data.pbin_info import common_tokenizer, write_derived_info


def chunk_range(num_chunks: int, num_samples: int, chunk_id: int) -> tuple[int, int]:
    """[start, end) of chunk ``chunk_id``: sizes differ by at most one, larger chunks first (as
    ``numpy.array_split`` cuts: the first num_samples % num_chunks chunks hold one more). Chunks past the samples
    are empty ([n, n)). DataError for num_chunks below 1 or chunk_id outside 0..num_chunks - 1."""
    if num_chunks <= 0:
        raise DataError("num_chunks must be at least 1")
    if not 0 <= chunk_id < num_chunks:
        raise DataError(f"chunk_id {chunk_id} must be in 0..{num_chunks - 1}")
    largest = math.ceil(num_samples / num_chunks)
    num_largest = num_samples % num_chunks or num_chunks
    start = largest * min(num_largest, chunk_id) + max(chunk_id - num_largest, 0) * (largest - 1)
    return start, start + (largest if chunk_id < num_largest else largest - 1)


def hashed_seed(parts: list[str], max_seed: int = 2**32 - 1) -> int:
    """The reference's seed of a list of strings: the sum of their SHA-256 values (UTF-8, read as one integer
    each) modulo ``max_seed`` (2**32 - 1), so 0 <= seed < max_seed; no parts give 0."""
    return sum(int(hashlib.sha256(part.encode("utf-8")).hexdigest(), 16) for part in parts) % max_seed


def _check_distinct(inputs: list[Path], output: Path) -> None:
    if any(Path(p).resolve() == Path(output).resolve() for p in inputs):
        raise DataError(f"{output} is also an input; write the output to another path")


def shuffle_tokenized_data(input_path, output_path, batch_size: int = 100, seed: int | None = None) -> int:
    """Write the documents of a .pbin in the order ``random.Random(seed).shuffle`` gives their positions (seed
    None: a fresh order each time); returns the number of documents written. ``batch_size`` documents are
    copied at a time (memory only: any size, below 1 taken as 1, gives the same file). The output replaces an
    existing file; it must not be the input (DataError). The info file follows the input's."""
    source = PackedFile(input_path)
    _check_distinct([Path(input_path)], Path(output_path))
    tokenizer = common_tokenizer([input_path])
    order = list(range(source.num_documents))
    random.Random(seed).shuffle(order)
    writer = PackedFileWriter(output_path, source.token_width, overwrite=True)
    try:
        step = max(batch_size, 1)
        for start in range(0, len(order), step):
            documents = [np.asarray(source.document(i)) for i in order[start : start + step]]
            writer.write_tokens(np.concatenate(documents), [len(d) for d in documents])
        num_documents, num_tokens = writer.close()
    except BaseException:
        writer.abort()
        raise
    write_derived_info(output_path, tokenizer, source.token_width, num_documents, num_tokens,
                       {"shuffled": str(Path(input_path).resolve()), "seed": seed})
    return len(order)


def _write_lines_atomically(path: Path, lines: list[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        f.writelines(lines)
    os.replace(tmp, path)


def shuffle_jsonl_data(input_path, output_path, seed: int | None = None) -> int:
    """Write the lines of a JSONL file (split after each b"\\n", each kept with its newline) in the order
    ``random.Random(seed).shuffle`` gives; returns the number of lines. As the reference, a last line without a
    newline is moved as it is (so it runs into the line after it). The output must not be the input."""
    _check_distinct([Path(input_path)], Path(output_path))
    lines = _read_lines(Path(input_path))
    random.Random(seed).shuffle(lines)
    _write_lines_atomically(Path(output_path), lines)
    return len(lines)


def _read_lines(path: Path) -> list[bytes]:
    with path.open("rb") as f:
        return f.readlines()  # split at b"\n" only, as the reference reads them


def _chunk_seed(global_seed: int | None, chunk_id: int) -> int | None:
    return hashed_seed([str(global_seed), str(chunk_id)]) if global_seed is not None else None


def create_shuffled_dataset_chunk(
    files: list[Path], output_path: Path, chunk_id: int, num_chunks: int, global_seed: int | None = None
) -> int:
    """Chunk ``chunk_id`` of ``num_chunks`` of each file (:func:`chunk_range` of its documents), concatenated in
    the order of ``files`` and shuffled with ``numpy.random.default_rng`` seeded by
    ``hashed_seed([str(global_seed), str(chunk_id)])`` (None: a fresh order); returns the number of documents
    in the chunk. DataError for files of different token widths, a chunk with no documents in any file, or an
    output among the inputs."""
    _check_distinct(files, output_path)
    tokenizer = common_tokenizer(files)
    documents: list[np.ndarray] = []
    width = None
    for path in files:
        packed = PackedFile(path)
        if width is None:
            width = packed.token_width
        elif packed.token_width != width:
            raise DataError(f"{path}: {packed.token_width}-byte tokens, but the files before it have {width}-byte tokens")
        start, end = chunk_range(num_chunks, packed.num_documents, chunk_id)
        documents.extend(np.asarray(packed.document(i)) for i in range(start, end))
    if not documents:
        raise DataError(f"chunk {chunk_id} has no documents; use fewer than {num_chunks} chunks")
    order = np.arange(len(documents))
    np.random.default_rng(_chunk_seed(global_seed, chunk_id)).shuffle(order)
    writer = PackedFileWriter(output_path, width, overwrite=True)
    try:
        shuffled = [documents[i] for i in order]
        writer.write_tokens(np.concatenate(shuffled), [len(d) for d in shuffled])
        num_documents, num_tokens = writer.close()
    except BaseException:
        writer.abort()
        raise
    write_derived_info(output_path, tokenizer, width, num_documents, num_tokens,
                       {"chunk": [chunk_id, num_chunks], "of": [str(Path(p).resolve()) for p in files], "seed": global_seed})
    return len(documents)


def create_shuffled_jsonl_dataset_chunk(
    files: list[Path], output_path: Path, chunk_id: int, num_chunks: int, global_seed: int | None = None
) -> int:
    """:func:`create_shuffled_dataset_chunk` for the lines of JSONL files; returns the number of lines."""
    _check_distinct(files, output_path)
    lines: list[bytes] = []
    for path in files:
        file_lines = _read_lines(Path(path))
        start, end = chunk_range(num_chunks, len(file_lines), chunk_id)
        lines.extend(file_lines[start:end])
    if not lines:
        raise DataError(f"chunk {chunk_id} has no lines; use fewer than {num_chunks} chunks")
    order = np.arange(len(lines))
    np.random.default_rng(_chunk_seed(global_seed, chunk_id)).shuffle(order)
    _write_lines_atomically(output_path, [lines[i] for i in order])
    return len(lines)


def listed_files(list_path: str | os.PathLike, root: str | os.PathLike, kind: str) -> list[Path]:
    """The files a list names, one per line (blank lines skipped), under ``root`` and with the suffix of
    ``kind`` ("pbin" or "jsonl"), as the reference's chunking commands read them."""
    listed = Path(list_path).read_text(encoding="utf-8").splitlines()
    return [Path(root) / Path(line.strip()).with_suffix(f".{kind}") for line in listed if line.strip()]
