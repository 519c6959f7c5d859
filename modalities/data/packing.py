"""Tokenize a JSONL corpus into a .pbin file.

Documents are read through the raw index in batches of ``processing_batch_size``, the text picked with the jq
pattern, batch-encoded, and the EOD token appended once per document; results are written strictly in batch
order, so the output does not depend on how the work was spread.

How the work is spread depends on the encoder. A Hugging Face fast tokenizer (`tokenizers`) releases the GIL
while it encodes, so one process does it all with threads in a pipeline: one reads and parses JSON,
``num_cpus`` encode a batch each, side by side, and the caller's thread puts them back in order, flattens and
writes; this runs faster than the tokenizer on its own thread pool. SentencePiece from 0.2.2 releases the GIL
too and goes the same way; older SentencePiece and encoders of one's own run in a pool of ``num_cpus`` worker
processes.

What encodes a Hugging Face byte-level BPE is chosen once per pack (bpe_engine.choose_engine): tiktoken where it
can express the tokenizer and gives its ids on a sample of the corpus and on built test documents, else
`tokenizers`. tiktoken also releases the GIL and takes the thread pipeline; it hands over each batch's ids back
to back in one array, which the writer takes as it is.

``shard=(i, n)`` packs the i-th of n contiguous slices of the index; merging the n parts in order
(`merge_packed_data`) gives the file packing the whole would.

A bad document (invalid JSON, a missing field, a value that is not a string, an encode failure) stops the run
with its file and line number, or, when asked, is skipped and counted; it is never dropped silently.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modalities.data.bpe_engine import choose_engine
from modalities.data.errors import DataError
from modalities.data.jq_pattern import JqPatternError, apply_jq_pattern, compile_jq_pattern
from modalities.data.pbin import TOKEN_DTYPES, PackedFileWriter, token_width_for_vocab
from modalities.data.pbin_info import write_info
from modalities.data.raw_index import default_index_path, read_raw_index
from modalities.data.tokenizers import TokenizerWrapper, tokenizer_parallelism_off

if TYPE_CHECKING:
    from modalities.data.config import PackEncodedDataSettings


@dataclass
class SkippedDocument:
    document: int  # position in the raw index
    line: int  # 1-based line in the JSONL file
    reason: str


@dataclass
class PackingResult:
    """What pack_encoded_data wrote: ``num_documents`` (the documents packed, skipped ones not counted) and
    ``num_tokens`` (EOD tokens included) of ``dst_path`` at ``token_width`` bytes, the skipped documents in
    order, and the documents whose encoding holds the EOD token before its end."""

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
    parallelism: str = ""  # how the work was spread, for the summary
    engine: str = ""  # what encoded the documents, and why (bpe_engine.EngineChoice.describe)


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
    """Worker-process task: read, parse, encode and flatten one batch."""
    first_document, entries = task
    texts, documents, errors = _read_texts(_worker["src"], _worker["jq_steps"], first_document, entries)
    encoded, documents = _encode_each_on_failure(_worker["encoder"], texts, documents, errors)
    return _flatten(encoded, documents, errors, _worker["eod_id"], _worker["width"])


def _sample_texts(src: Path, steps, index: np.ndarray, first: int, end: int) -> list[str]:
    """Texts of up to SAMPLE_DOCUMENTS documents spread evenly over [first, end) (in order, the document whose
    text brings the total to SAMPLE_CHARACTERS or more the last), for comparing engines before a pack; documents
    that cannot be read are left to the pack to report."""
    from modalities.data.bpe_engine import SAMPLE_CHARACTERS, SAMPLE_DOCUMENTS

    count = min(SAMPLE_DOCUMENTS, end - first)
    texts: list[str] = []
    characters = 0
    with open(src, "rb") as f:
        for document in sorted(set(np.linspace(first, end - 1, count).round().astype(int).tolist())) if count else []:
            found, _, _ = _read_texts(f, steps, document, index[document : document + 1])
            texts += found
            characters += sum(map(len, found))
            if characters >= SAMPLE_CHARACTERS:
                break
    return texts


def _read_texts(src, steps, first_document: int, entries: np.ndarray) -> tuple[list[str], list[int], list]:
    """The texts of a batch of index entries (one read of their span), with the documents they belong to and
    the (document, reason) of those that cannot be used."""
    start = int(entries[0, 0]) if len(entries) else 0
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
    return texts, documents, errors


def _flatten(encoded, documents: list[int], errors: list, eod: int, width: int) -> _ChunkResult:
    """One batch's token ids as the file holds them: each document's ids, then the EOD token unless the
    encoding already ends with it (as the reference: padding with pad = EOD gets no second one). ``encoded``:
    each document's ids, or all of them back to back with each document's count (an encoder's encode_flat)."""
    if isinstance(encoded, tuple):
        flat, lengths = encoded
    else:
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        flat = np.fromiter(chain.from_iterable(encoded), dtype=np.int64, count=int(lengths.sum()))
    ends = np.cumsum(lengths)
    limit = 1 << (8 * width)
    if len(flat) and (flat.min() < 0 or flat.max() >= limit):
        raise DataError(f"the tokenizer produced an id outside 0..{limit - 1}, which the token width cannot hold")
    is_eod = flat == eod
    ends_with_eod = np.zeros(len(lengths), dtype=bool)
    nonempty = lengths > 0
    ends_with_eod[nonempty] = is_eod[ends[nonempty] - 1]
    # Documents holding an EOD before the run of EOD tokens they may end with: rare, so looked at one by one.
    starts = ends - lengths
    eod_counts = np.add.reduceat(is_eod, starts[nonempty], dtype=np.int64) if is_eod.any() and nonempty.any() else None
    with_eod_inside = []
    if eod_counts is not None:
        for j, count in zip(np.flatnonzero(nonempty).tolist(), eod_counts.tolist()):
            if count and _has_eod_inside(flat[starts[j] : ends[j]], eod):
                with_eod_inside.append(documents[j])
    tokens = np.insert(flat, ends[~ends_with_eod], eod).astype(TOKEN_DTYPES[width])
    errors.sort()
    return _ChunkResult(tokens.tobytes(), lengths + ~ends_with_eod, errors, with_eod_inside)


def _has_eod_inside(ids, eod: int) -> bool:
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


def shard_bounds(num_documents: int, shard: tuple[int, int]) -> tuple[int, int]:
    """The documents [first, end) of shard i of n: contiguous slices, sizes differing by at most one
    (``i * num_documents // n`` to ``(i + 1) * num_documents // n``: the n shards cover every document once,
    in order; with more shards than documents some are empty). DataError unless i and n are ints with
    0 <= i < n."""
    i, n = shard
    if not (isinstance(i, int) and isinstance(n, int) and n >= 1 and 0 <= i < n):
        raise DataError(f"shard {i}/{n}: give I/N with 0 <= I < N")
    return i * num_documents // n, (i + 1) * num_documents // n


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
    shard: tuple[int, int] | None = None,
    on_start: Callable[[int], None] | None = None,
    tokenizer_engine: str = "auto",
) -> PackingResult:
    """Pack ``src_path`` (JSONL with a raw index) into a .pbin file; see the module docstring.

    ``special_tokens_as_text``: a special token's string inside a document (e.g. a literal "<|endoftext|>" in web
    text) is encoded as its characters, so every document ends with exactly one EOD and holds no other. Off by
    default, as in the reference (same files); the result counts the documents it would change either way.

    ``shard=(i, n)``: only the i-th of n contiguous slices of the documents (see shard_bounds).
    ``tokenizer_engine``: auto (tiktoken where it gives the tokenizer's ids, see bpe_engine), tiktoken (an error
    where it cannot be used) or huggingface.
    ``on_start(num_documents)`` is called once the index is read, with the documents to pack;
    ``on_progress(documents_done, tokens_done)`` after each batch is written.
    """
    began = time.perf_counter()
    src = Path(src_path)
    if not src.is_file():
        raise DataError(f"{src}: JSONL file not found")
    dst = Path(dst_path) if dst_path is not None else src.with_suffix(".pbin")
    if dst.exists() and not overwrite:
        raise DataError(f"{dst}: output file already exists; remove it or pass --overwrite")
    index = read_raw_index(index_path if index_path is not None else default_index_path(src), src)
    first, end = shard_bounds(len(index), shard) if shard is not None else (0, len(index))
    try:
        jq_steps = compile_jq_pattern(jq_pattern)
    except JqPatternError as e:
        raise DataError(str(e)) from None
    width = token_width_for_vocab(tokenizer.vocab_size)
    eod_id = tokenizer.get_token_id(eod_token)
    # A tokenizer of one's own may predate special_tokens_as_text: it is asked only when that is wanted.
    encoder = tokenizer.batch_encoder(special_tokens_as_text) if special_tokens_as_text else tokenizer.batch_encoder()
    engine = choose_engine(encoder, tokenizer_engine, lambda: _sample_texts(src, jq_steps, index, first, end))
    encoder = engine.encoder
    tasks = [(start, index[start : min(start + processing_batch_size, end)]) for start in range(first, end, processing_batch_size)]
    if on_start is not None:
        on_start(end - first)

    writer = PackedFileWriter(dst, width, overwrite=overwrite)
    skipped: list[SkippedDocument] = []
    with_eod_inside: list[int] = []
    num_with_eod_inside = 0
    documents_done = tokens_done = 0
    window = max(max_batches_in_flight or 0, 2 * max(1, num_cpus))
    try:
        spread = _results_in_order(src, jq_steps, encoder, eod_id, width, tasks, num_cpus, window)
        with spread as results:
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
    identity = tokenizer.identity() if hasattr(tokenizer, "identity") else None
    write_info(
        dst,
        {
            "tokenizer": {
                **(identity or {"kind": "custom", "source": type(tokenizer).__name__, "fingerprint": None}),
                "vocab_size": tokenizer.vocab_size,
                "eod_token": eod_token,
                "eod_id": eod_id,
            },
            "engine": engine.record(),
            "token_width": width,
            "documents": num_documents,
            "tokens": num_tokens,
            "source": {
                "path": str(src.resolve()),
                "documents": [first, end],
                "of": len(index),
                "jq_pattern": jq_pattern,
                "special_tokens_in_text": "as_text" if special_tokens_as_text else "as_tokens",
            },
        },
    )
    return PackingResult(
        dst, num_documents, num_tokens, width, time.perf_counter() - began, skipped, num_with_eod_inside,
        with_eod_inside, spread.parallelism, engine.describe(),
    )


class _results_in_order:
    """The batches' results, in task order, from threads (an encoder that releases the GIL and runs its own
    threads) or from a pool of worker processes (any other). At most ``window`` batches are read ahead of the
    writer, so memory holds a few batches, not the corpus. A context manager: leaving it stops the work."""

    def __init__(self, src: Path, jq_steps, encoder, eod_id: int, width: int, tasks: list, num_cpus: int, window: int):
        self.args = (str(src), jq_steps, encoder, eod_id, width)
        self.tasks, self.num_cpus, self.window = tasks, max(1, num_cpus), window
        self.threaded = bool(getattr(encoder, "releases_gil", False))
        self.tokenizer_threads: str | None = None
        self.pool = None
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.environment = {name: os.environ.get(name) for name in ("TOKENIZERS_PARALLELISM", "RAYON_NUM_THREADS")}

    @property
    def parallelism(self) -> str:
        if self.threaded:
            return f"one process, the tokenizer on {self.tokenizer_threads or self.num_cpus} thread(s)"
        num_workers = min(self.num_cpus, len(self.tasks))
        return f"{num_workers} worker process(es)" if num_workers > 1 else "one process"

    def __enter__(self):
        if self.threaded:
            return self._threaded()
        num_workers = min(self.num_cpus, len(self.tasks))
        if num_workers <= 1:
            _init_worker(*self.args)
            return (_encode_chunk(task) for task in self.tasks)
        tokenizer_parallelism_off()
        self.pool = multiprocessing.get_context("spawn").Pool(num_workers, initializer=_init_worker, initargs=self.args)
        return _ordered_results(self.pool, self.tasks, self.window)

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
        if "src" in _worker:
            _worker.pop("src").close()
        for name, value in self.environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def _threaded(self):
        """reader (file, JSON, jq) -> ``num_cpus`` encoder threads (each encodes whole batches, GIL released) ->
        this generator, which puts the batches back in order and flattens them; stages hand over through bounded
        queues."""
        # Batches side by side, each encoded serially: every core stays busy. One batch at a time spread over
        # the tokenizer's own thread pool leaves cores idle at the end of each batch (docs/benchmarks.md: 6-8%
        # slower with a GPT-2-sized BPE). The tokenizer reads this setting at every call.
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        self.tokenizer_threads = str(self.num_cpus)
        src_path, jq_steps, encoder, eod_id, width = self.args
        # Short queues: reading is quick, and every batch waiting is memory; a few encoded batches let the ids of
        # one be taken out (under the GIL) while the encoder threads encode the next ones.
        texts_queue: queue.Queue = queue.Queue(maxsize=min(self.window, 2 * self.num_cpus))
        encoded_queue: queue.Queue = queue.Queue(maxsize=2 * self.num_cpus)
        # An encoder's own fastest form: all ids back to back (tiktoken), or `tokenizers`' Encoding objects.
        encode_batch = getattr(encoder, "encode_flat", None) or getattr(encoder, "encodings", encoder)

        def put(q: queue.Queue, item) -> bool:
            while not self.stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def get(q: queue.Queue, producers: list[threading.Thread]):
            while not self.stop.is_set():
                try:
                    return q.get(timeout=0.1)
                except queue.Empty:
                    if not any(thread.is_alive() for thread in producers) and q.empty():
                        # The stage feeding this queue ended without handing on a result or an error: fail
                        # instead of waiting forever.
                        return _Failed(DataError(f"the packing pipeline's {producers[0].name} thread stopped early"))
            return _STOPPED

        def read() -> None:
            index = 0
            try:
                with open(src_path, "rb") as src:
                    for index, (first_document, entries) in enumerate(self.tasks):
                        if not put(texts_queue, (index, _read_texts(src, jq_steps, first_document, entries))):
                            return
            except BaseException as e:  # noqa: BLE001 - handed on: the writer raises it in order
                put(texts_queue, (index, _Failed(e)))
            for _ in encoders:  # the end: each encoder thread finishes now, not at the next poll
                put(texts_queue, None)

        def encode() -> None:
            while True:
                item = get(texts_queue, reader)
                if item is _STOPPED or item is None:
                    return
                if isinstance(item, _Failed):  # the reader stopped early
                    put(encoded_queue, item)
                    return
                index, work = item
                if not isinstance(work, _Failed):
                    texts, documents, errors = work
                    try:
                        encoded, documents = _encode_each_on_failure(encode_batch, texts, documents, errors)
                        work = (encoded, documents, errors)
                    except BaseException as e:  # noqa: BLE001 - handed on, as in read()
                        work = _Failed(e)
                if not put(encoded_queue, (index, work)):
                    return

        reader = [threading.Thread(target=read, name="reader", daemon=True)]
        encoders = [threading.Thread(target=encode, name="encoder", daemon=True) for _ in range(self.num_cpus)]
        self.threads = reader + encoders
        for thread in self.threads:
            thread.start()
        done: dict[int, Any] = {}  # batches encoded ahead of the one the writer waits for
        for index in range(len(self.tasks)):
            while index not in done:
                item = get(encoded_queue, encoders)
                if item is _STOPPED:
                    return
                if isinstance(item, _Failed):
                    raise item.error
                done[item[0]] = item[1]
            work = done.pop(index)
            if isinstance(work, _Failed):
                raise work.error
            encoded, documents, errors = work
            if not isinstance(encoded, tuple):  # not ids back to back: Encodings, or a batch retried one by one
                encoded = [each.ids if hasattr(each, "ids") else each for each in encoded]  # .ids makes a new list
            yield _flatten(encoded, documents, errors, eod_id, width)


_STOPPED = object()


@dataclass
class _Failed:
    error: BaseException


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


def shard_path(destination: Path, shard: tuple[int, int]) -> Path:
    """Where shard I of N of ``destination`` goes: corpus.pbin -> corpus.00003-of-00008.pbin."""
    index, count = shard
    return destination.with_name(f"{destination.stem}.{index:05d}-of-{count:05d}{destination.suffix or '.pbin'}")


def source_lines_of(src_path: str | os.PathLike, index_path: str | os.PathLike, documents: list[int]) -> list[int]:
    """The 1-based JSONL lines of these documents (positions in the raw index)."""
    index = read_raw_index(index_path)
    return [_line_number(Path(src_path), int(index[document, 0])) for document in documents]


def pack_as_configured(
    settings: PackEncodedDataSettings,
    tokenizer: TokenizerWrapper,
    *,
    overwrite: bool = False,
    skip_bad_documents: bool = False,
    num_cpus: int | None = None,
    special_tokens_in_text: str | None = None,
    shard: tuple[int, int] | None = None,
    tokenizer_engine: str | None = None,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> PackingResult:
    """Pack as a pack config's ``settings`` say (only slice I of N with ``shard=(I, N)``, into its shard_path);
    the other arguments are the command line's, each over the setting it names when given."""
    num_cpus = num_cpus or settings.num_cpus
    destination = settings.dst_path or settings.src_path.with_suffix(".pbin")
    if shard is not None:
        destination = shard_path(destination, shard)
    return pack_encoded_data(
        src_path=settings.src_path,
        tokenizer=tokenizer,
        eod_token=settings.eod_token,
        dst_path=destination,
        index_path=settings.index_path,
        jq_pattern=settings.jq_pattern,
        num_cpus=num_cpus,
        processing_batch_size=settings.processing_batch_size,
        max_batches_in_flight=num_cpus + settings.raw_samples_queue_size + settings.processed_samples_queue_size,
        skip_bad_documents=skip_bad_documents or settings.skip_bad_documents,
        overwrite=overwrite or settings.overwrite,
        on_start=on_start,
        on_progress=on_progress,
        special_tokens_as_text=(special_tokens_in_text or settings.special_tokens_in_text) == "as_text",
        shard=shard,
        tokenizer_engine=tokenizer_engine or settings.tokenizer_engine,
    )
