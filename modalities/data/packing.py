"""Tokenize a JSONL corpus into a .pbin file, in parallel across processes.

The main process cuts the raw index into batches of ``processing_batch_size`` documents and hands them to a
pool of worker processes (spawn-safe: workers import only this module, numpy and the tokenizer runtime). Each
worker reads its documents from the JSONL file, picks the text with the jq pattern, batch-encodes it with the
fast tokenizer and appends the EOD token once per document. The main process writes results strictly in batch
order, so the output is byte-identical for any number of workers.

A bad document (invalid JSON, a missing field, a value that is not a string, an encode failure) stops the run
with its file and line number, or, when asked, is skipped and counted; it is never dropped silently.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modalities.data.errors import DataError
from modalities.data.jq_pattern import JqPatternError, apply_jq_pattern, compile_jq_pattern
from modalities.data.pbin import TOKEN_DTYPES, PackedFileWriter, token_width_for_vocab
from modalities.data.raw_index import default_index_path, read_raw_index
from modalities.data.tokenizers import TokenizerWrapper, tokenizer_parallelism_off


@dataclass
class SkippedDocument:
    document: int  # position in the raw index
    line: int  # 1-based line in the JSONL file
    reason: str


@dataclass
class PackingResult:
    dst_path: Path
    num_documents: int
    num_tokens: int
    token_width: int
    seconds: float
    skipped: list[SkippedDocument] = field(default_factory=list)
    # Documents whose encoding holds the EOD token before its end: their text contains the EOD string, which the
    # tokenizer read as the token (see special_tokens_as_text). Their count, and the first few (raw index).
    num_with_eod_inside: int = 0
    first_with_eod_inside: list[int] = field(default_factory=list)


@dataclass
class _ChunkResult:
    tokens: bytes
    doc_token_lengths: np.ndarray
    errors: list[tuple[int, str]]  # (document number, reason)
    with_eod_inside: list[int] = field(default_factory=list)  # document numbers


# Per-process state of a packing worker, set once by _init_worker.
_worker: dict = {}


def _init_worker(src_path: str, jq_steps: tuple, encoder: Callable, eod_id: int, token_width: int) -> None:
    tokenizer_parallelism_off()
    _worker.update(src=open(src_path, "rb"), jq_steps=jq_steps, encoder=encoder, eod_id=eod_id, width=token_width)  # noqa: SIM115


def _encode_chunk(task: tuple[int, np.ndarray]) -> _ChunkResult:
    first_document, entries = task
    src, steps, encoder = _worker["src"], _worker["jq_steps"], _worker["encoder"]
    start = int(entries[0, 0])
    src.seek(start)
    span = src.read(int(entries[-1, 0] + entries[-1, 1]) - start) if len(entries) else b""
    texts: list[str] = []
    documents: list[int] = []
    errors: list[tuple[int, str]] = []
    for i, (offset, length) in enumerate(entries.tolist()):
        raw = span[offset - start : offset - start + length]
        try:
            text = apply_jq_pattern(steps, json.loads(raw))
        except ValueError as e:
            errors.append((first_document + i, f"not valid JSON ({e})"))
            continue
        except KeyError as e:
            errors.append((first_document + i, str(e.args[0])))
            continue
        if not isinstance(text, str):
            errors.append(
                (first_document + i, f"the jq pattern selects a value of type {type(text).__name__}, not a string")
            )
            continue
        texts.append(text)
        documents.append(first_document + i)
    encoded, documents = _encode_each_on_failure(encoder, texts, documents, errors)
    eod = _worker["eod_id"]
    flat: list[int] = []
    lengths = np.empty(len(encoded), dtype=np.int64)
    with_eod_inside = []
    for j, ids in enumerate(encoded):
        if _has_eod_inside(ids, eod):
            with_eod_inside.append(documents[j])
        flat.extend(ids)
        # As the reference: an encoding that already ends with the EOD token (padding with pad = EOD) gets no
        # second one.
        ends_with_eod = len(ids) > 0 and ids[-1] == eod
        if not ends_with_eod:
            flat.append(eod)
        lengths[j] = len(ids) + (0 if ends_with_eod else 1)
    tokens = np.array(flat, dtype=np.int64)
    limit = 1 << (8 * _worker["width"])
    if len(tokens) and (tokens.min() < 0 or tokens.max() >= limit):
        raise DataError(f"the tokenizer produced an id outside 0..{limit - 1}, which the token width cannot hold")
    errors.sort()
    return _ChunkResult(tokens.astype(TOKEN_DTYPES[_worker["width"]]).tobytes(), lengths, errors, with_eod_inside)


def _has_eod_inside(ids: list[int], eod: int) -> bool:
    """Whether the EOD token occurs before the run of EOD tokens an encoding may end with (padding)."""
    end = len(ids)
    while end and ids[end - 1] == eod:
        end -= 1
    return eod in ids[:end]


def _encode_each_on_failure(encoder, texts, documents, errors) -> tuple[list[list[int]], list[int]]:
    """Batch-encode; if the batch fails, encode one by one to name the documents that fail. Returns the
    encodings and the documents they belong to."""
    try:
        return encoder(texts), documents
    except Exception:  # noqa: S110, BLE001 - a failing batch is retried document by document below
        pass
    encoded, kept = [], []
    for text, document in zip(texts, documents):
        try:
            encoded.append(encoder([text])[0])
            kept.append(document)
        except Exception as e:  # noqa: BLE001
            errors.append((document, f"the tokenizer failed on it ({type(e).__name__}: {e})"))
    return encoded, kept


def pack_encoded_data(
    src_path: str | os.PathLike,
    tokenizer: TokenizerWrapper,
    eod_token: str,
    dst_path: str | os.PathLike | None = None,
    index_path: str | os.PathLike | None = None,
    jq_pattern: str = ".text",
    num_cpus: int = 1,
    processing_batch_size: int = 1000,
    max_batches_in_flight: int | None = None,
    skip_bad_documents: bool = False,
    overwrite: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    special_tokens_as_text: bool = False,
) -> PackingResult:
    """Pack ``src_path`` (JSONL with a raw index) into a .pbin file; see the module docstring.

    ``special_tokens_as_text``: a special token's string inside a document (e.g. a literal "<|endoftext|>" in web
    text) is encoded as its characters, so every document ends with exactly one EOD and holds no other. Off by
    default, as in the reference (same files); the result counts the documents it would change either way.

    ``on_progress(documents_done, tokens_done)`` is called after each batch is written.
    """
    began = time.perf_counter()
    src = Path(src_path)
    if not src.is_file():
        raise DataError(f"{src}: JSONL file not found")
    dst = Path(dst_path) if dst_path is not None else src.with_suffix(".pbin")
    if dst.exists() and not overwrite:
        raise DataError(f"{dst}: output file already exists; remove it or pass --overwrite")
    index = read_raw_index(index_path if index_path is not None else default_index_path(src), src)
    try:
        jq_steps = compile_jq_pattern(jq_pattern)
    except JqPatternError as e:
        raise DataError(str(e)) from None
    width = token_width_for_vocab(tokenizer.vocab_size)
    eod_id = tokenizer.get_token_id(eod_token)
    # A tokenizer of one's own may predate special_tokens_as_text: it is asked only when that is wanted.
    encoder = tokenizer.batch_encoder(special_tokens_as_text) if special_tokens_as_text else tokenizer.batch_encoder()
    init_args = (str(src), jq_steps, encoder, eod_id, width)
    tasks = [
        (start, index[start : start + processing_batch_size]) for start in range(0, len(index), processing_batch_size)
    ]

    # More workers than batches would only cost start-up time.
    num_workers = max(1, min(num_cpus, len(tasks)))
    writer = PackedFileWriter(dst, width, overwrite=overwrite)
    skipped: list[SkippedDocument] = []
    with_eod_inside: list[int] = []
    num_with_eod_inside = 0
    documents_done = tokens_done = 0
    pool = None
    parallelism_before = os.environ.get("TOKENIZERS_PARALLELISM")
    try:
        if num_workers == 1:
            _init_worker(*init_args)
            results = (_encode_chunk(task) for task in tasks)
        else:
            tokenizer_parallelism_off()
            pool = multiprocessing.get_context("spawn").Pool(num_workers, initializer=_init_worker, initargs=init_args)
            results = _ordered_results(pool, tasks, max(max_batches_in_flight or 0, 2 * num_workers))
        for (first_document, entries), result in zip(tasks, results):
            for document, reason in result.errors:
                line = _line_number(src, int(index[document, 0]))
                if not skip_bad_documents:
                    raise DataError(
                        f"{src}:{line}: document {document}: {reason}; fix it, or skip bad documents "
                        "(--skip-bad-documents, or skip_bad_documents: true in the settings) to leave them out "
                        "with a count"
                    )
                skipped.append(SkippedDocument(document, line, reason))
            num_with_eod_inside += len(result.with_eod_inside)
            with_eod_inside.extend(result.with_eod_inside[: max(0, 10 - len(with_eod_inside))])
            writer.write_tokens(np.frombuffer(result.tokens, dtype=TOKEN_DTYPES[width]), result.doc_token_lengths)
            documents_done += len(entries)
            tokens_done += len(result.tokens) // width
            if on_progress is not None:
                on_progress(documents_done, tokens_done)
        num_documents, num_tokens = writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        if "src" in _worker:
            _worker.pop("src").close()
        if parallelism_before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = parallelism_before
    return PackingResult(
        dst, num_documents, num_tokens, width, time.perf_counter() - began, skipped, num_with_eod_inside, with_eod_inside
    )


def _ordered_results(pool, tasks: list, window: int):
    """Results in task order, with at most ``window`` batches submitted but not yet written (bounded memory)."""
    pending: deque = deque()
    for task in tasks:
        pending.append(pool.apply_async(_encode_chunk, (task,)))
        if len(pending) >= window:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def _line_number(path: Path, byte_offset: int) -> int:
    count = 0
    with path.open("rb") as f:
        remaining = byte_offset
        while remaining > 0:
            block = f.read(min(remaining, 1 << 20))
            if not block:
                break
            count += block.count(b"\n")
            remaining -= len(block)
    return count + 1
