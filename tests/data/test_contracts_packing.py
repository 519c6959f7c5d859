"""pack_encoded_data's contract through its public function, with a tokenizer written here (one id per
character, '#' is the EOD token): the file holds each document's ids and then EOD once, whatever the batch
size, the number of encoder threads, the shard or the skipped documents; the figures it reports, by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modalities.data.errors import DataError
from modalities.data.packing import pack_encoded_data, shard_bounds
from modalities.data.pbin import PackedFile
from modalities.data.pbin_info import read_info
from modalities.data.raw_index import create_raw_index

EOD = "#"


def encode(text: str) -> list[int]:
    """The ids written out by hand: '#' is the EOD token 0, other characters 1 + code point % 250."""
    return [0 if c == EOD else 1 + ord(c) % 250 for c in text]


class _Encoder:
    def __init__(self, releases_gil: bool):
        self.releases_gil = releases_gil

    def __call__(self, texts):
        if any("FAIL" in t for t in texts):
            raise RuntimeError("cannot encode FAIL")
        return [encode(t) for t in texts]


class Characters:
    """A tokenizer of one's own: no identity(), a batch_encoder() without the special-tokens argument."""

    vocab_size = 256

    def __init__(self, threaded: bool = False):
        self.threaded = threaded

    def get_token_id(self, token):
        if token != EOD:
            raise DataError(f"token {token!r} is not a single token")
        return 0

    def batch_encoder(self):
        return _Encoder(self.threaded)


def _corpus(tmp_path, texts, name="c.jsonl", trailing_newline=True):
    path = tmp_path / name
    text = "".join(json.dumps({"text": t}) + "\n" for t in texts)
    text = text if trailing_newline else text[:-1]
    path.write_text(text, encoding="utf-8")
    create_raw_index(path)
    return path


def _documents(path) -> list[list[int]]:
    packed = PackedFile(path)
    return [packed.document(i).tolist() for i in range(packed.num_documents)]


TEXTS = ["ab", "", "c", "hello world", "xy"]


@pytest.mark.parametrize("threaded", [False, True])
@pytest.mark.parametrize("batch_size", [1, 2, 5, 6])  # one, not dividing 5, exactly 5, one past
def test_each_document_is_its_ids_then_eod_whatever_the_batch(tmp_path, batch_size, threaded):
    path = _corpus(tmp_path, TEXTS)
    progress, started = [], []
    result = pack_encoded_data(path, Characters(threaded), EOD, processing_batch_size=batch_size,
                               on_progress=lambda d, t: progress.append((d, t)), on_start=started.append)
    expected = [encode(t) + [0] for t in TEXTS]
    assert _documents(result.dst_path) == expected
    assert result.dst_path == tmp_path / "c.pbin"
    assert (result.num_documents, result.num_tokens, result.token_width) == (5, sum(map(len, expected)), 1)
    assert (result.skipped, result.num_with_eod_inside, result.first_with_eod_inside) == ([], 0, [])
    assert started == [5]
    # after each batch: documents and tokens written so far
    ends = list(range(batch_size, 5, batch_size)) + [5]
    assert progress == [(end, sum(len(e) for e in expected[:end])) for end in ends]
    assert result.parallelism == ("one process, the tokenizer on 1 thread(s)" if threaded else "one process")


@pytest.mark.parametrize("threaded", [False, True])
def test_no_documents_make_an_empty_file(tmp_path, threaded):
    path = tmp_path / "c.jsonl"
    path.write_text("")
    create_raw_index(path)
    progress = []
    result = pack_encoded_data(path, Characters(threaded), EOD, on_progress=lambda d, t: progress.append(d))
    assert (result.num_documents, result.num_tokens, progress) == (0, 0, [])
    assert PackedFile(result.dst_path).num_documents == 0


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(alphabet="ab #é", max_size=6), max_size=8), st.integers(1, 4), st.integers(1, 3),
       st.booleans())
def test_drawn_corpora_pack_to_the_hand_written_stream(tmp_path_factory, texts, batch_size, num_cpus, threaded):
    folder = tmp_path_factory.mktemp("p")
    path = _corpus(folder, texts)
    result = pack_encoded_data(path, Characters(threaded), EOD, processing_batch_size=batch_size,
                               num_cpus=num_cpus if threaded else 1)
    # an encoding that already ends with EOD gets no second one; one holding it before its end is counted
    expected = [encode(t) + ([] if t.endswith(EOD) else [0]) for t in texts]
    assert _documents(result.dst_path) == expected
    inside = [i for i, t in enumerate(texts) if EOD in t.rstrip(EOD)]
    assert (result.num_with_eod_inside, result.first_with_eod_inside) == (len(inside), inside[:10])


class CharactersWithSpecialText(Characters):
    """A tokenizer whose encoder can read the EOD character as text (then '#' is the id of any character)."""

    def batch_encoder(self, special_tokens_as_text: bool = False):
        if not special_tokens_as_text:
            return _Encoder(False)
        return lambda texts: [[1 + ord(c) % 250 for c in t] for t in texts]


@pytest.mark.parametrize("as_text", [False, True])
def test_special_tokens_as_text_is_asked_of_the_encoder_and_recorded(tmp_path, as_text):
    import time

    began = time.perf_counter()
    result = pack_encoded_data(_corpus(tmp_path, ["a#b", "c#"]), CharactersWithSpecialText(), EOD,
                               special_tokens_as_text=as_text)
    took = time.perf_counter() - began
    assert 0 <= result.seconds <= took  # the run's own time, measured around it
    if as_text:
        assert _documents(result.dst_path) == [[98, 36, 99, 0], [100, 36, 0]]  # '#' is 1 + 35 as text
        assert (result.num_with_eod_inside, read_info(result.dst_path)["source"]["special_tokens_in_text"]) == (
            0, "as_text")
    else:
        assert _documents(result.dst_path) == [[98, 0, 99, 0], [100, 0]]
        assert (result.num_with_eod_inside, read_info(result.dst_path)["source"]["special_tokens_in_text"]) == (
            1, "as_tokens")


def test_only_the_first_ten_documents_with_eod_inside_are_listed(tmp_path):
    texts = [f"a#b{i}" for i in range(12)] + ["plain"]
    result = pack_encoded_data(_corpus(tmp_path, texts), Characters(), EOD, processing_batch_size=5)
    assert (result.num_with_eod_inside, result.first_with_eod_inside) == (12, list(range(10)))


@pytest.mark.parametrize(
    "num_documents, shard, bounds",
    [(5, (0, 1), (0, 5)), (0, (0, 1), (0, 0)), (5, (0, 2), (0, 2)), (5, (1, 2), (2, 5)), (6, (1, 2), (3, 6)),
     (1, (0, 2), (0, 0)), (1, (1, 2), (0, 1))],
)
def test_shard_bounds_by_hand(num_documents, shard, bounds):
    assert shard_bounds(num_documents, shard) == bounds


@settings(max_examples=200)
@given(st.integers(0, 100), st.integers(1, 20))
def test_shards_cover_the_documents_once_in_order(num_documents, num_shards):
    bounds = [shard_bounds(num_documents, (i, num_shards)) for i in range(num_shards)]
    assert bounds[0][0] == 0 and bounds[-1][1] == num_documents
    assert all(bounds[i][1] == bounds[i + 1][0] for i in range(num_shards - 1))
    sizes = [end - first for first, end in bounds]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("shard", [(1, 1), (-1, 2), (0, 0), (2, 2), (0.5, 2), ("0", 1)])
def test_shards_outside_the_range_are_refused(shard):
    with pytest.raises(DataError, match=r"give I/N with 0 <= I < N"):
        shard_bounds(10, shard)


@pytest.mark.parametrize("shard, texts", [((0, 2), TEXTS[:2]), ((1, 2), TEXTS[2:]), ((2, 3), TEXTS[3:])])
def test_a_shard_packs_its_slice_and_records_it(tmp_path, shard, texts):
    result = pack_encoded_data(_corpus(tmp_path, TEXTS), Characters(), EOD, dst_path=tmp_path / "part.pbin",
                               shard=shard, processing_batch_size=2)
    assert _documents(result.dst_path) == [encode(t) + [0] for t in texts]
    info = read_info(result.dst_path)
    first, end = shard_bounds(5, shard)
    assert info["source"]["documents"] == [first, end] and info["source"]["of"] == 5
    assert info["tokenizer"] == {"kind": "custom", "source": "Characters", "fingerprint": None, "vocab_size": 256,
                                 "eod_token": EOD, "eod_id": 0}
    assert (info["documents"], info["tokens"], info["token_width"]) == (len(texts), result.num_tokens, 1)
    assert info["source"]["special_tokens_in_text"] == "as_tokens" and info["source"]["jq_pattern"] == ".text"


@pytest.mark.parametrize("threaded", [False, True])
@pytest.mark.parametrize(
    "texts, bad, reason",
    [
        (["FAIL", "b", "c"], 0, "the tokenizer failed on it"),  # the first document
        (["a", "b", "FAIL"], 2, "the tokenizer failed on it"),  # the last
        (["a", "FAIL", "c"], 1, "the tokenizer failed on it"),
    ],
)
def test_a_bad_document_stops_with_its_line_or_is_skipped_and_counted(tmp_path, threaded, texts, bad, reason):
    path = _corpus(tmp_path, texts, trailing_newline=False)
    with pytest.raises(DataError, match=rf"c.jsonl:{bad + 1}: document {bad}: {reason}"):
        pack_encoded_data(path, Characters(threaded), EOD, processing_batch_size=2)
    assert not (tmp_path / "c.pbin").exists() and not list(tmp_path.glob(".*.tmp"))
    result = pack_encoded_data(path, Characters(threaded), EOD, processing_batch_size=2, skip_bad_documents=True)
    assert [(s.document, s.line) for s in result.skipped] == [(bad, bad + 1)]
    assert reason in result.skipped[0].reason
    assert _documents(result.dst_path) == [encode(t) + [0] for i, t in enumerate(texts) if i != bad]
    assert result.num_documents == 2


def test_ids_the_width_cannot_hold_are_refused(tmp_path):
    class OneTooMany(Characters):  # 256 ids fit one byte; the encoder gives the 257th
        def batch_encoder(self):
            return lambda texts: [[255, 256] for _ in texts]

    with pytest.raises(DataError, match=r"the tokenizer produced an id outside 0\.\.255, which the token width"):
        pack_encoded_data(_corpus(tmp_path, ["x"]), OneTooMany(), EOD)
    assert not (tmp_path / "c.pbin").exists()
    wide = pack_encoded_data(_corpus(tmp_path, ["ab"], name="d.jsonl"), type("Wide", (Characters,),
                                                                            {"vocab_size": 257})(), EOD)
    assert wide.token_width == 2 and _documents(wide.dst_path) == [encode("ab") + [0]]


def test_inputs_that_cannot_be_packed_are_named(tmp_path):
    with pytest.raises(DataError, match="c.jsonl: JSONL file not found"):
        pack_encoded_data(tmp_path / "c.jsonl", Characters(), EOD)
    path = _corpus(tmp_path, TEXTS)
    with pytest.raises(DataError, match="must start with '.'"):
        pack_encoded_data(path, Characters(), EOD, jq_pattern="text")
    with pytest.raises(DataError, match="token '<eod>' is not a single token"):
        pack_encoded_data(path, Characters(), "<eod>")
    pack_encoded_data(path, Characters(), EOD)
    with pytest.raises(DataError, match="c.pbin: output file already exists"):
        pack_encoded_data(path, Characters(), EOD)
    again = pack_encoded_data(path, Characters(), EOD, overwrite=True)
    assert _documents(again.dst_path) == [encode(t) + [0] for t in TEXTS]


def test_an_index_elsewhere_and_a_jq_pattern_are_followed(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps({"m": {"t": t}}) for t in ["ab", "c"]) + "\n")
    create_raw_index(path, index_path=tmp_path / "elsewhere.idx")
    result = pack_encoded_data(path, Characters(), EOD, index_path=tmp_path / "elsewhere.idx", jq_pattern=".m.t",
                               dst_path=tmp_path / "out" / "x.pbin")
    assert result.dst_path == tmp_path / "out" / "x.pbin"
    assert _documents(result.dst_path) == [encode("ab") + [0], encode("c") + [0]]
    assert np.array_equal(PackedFile(result.dst_path).tokens, np.array(encode("ab") + [0] + encode("c") + [0]))


# --- where shards go, the lines of documents, and a pack config's settings against the command line -------------


@pytest.mark.parametrize(
    "destination, shard, expected",
    [
        ("out/corpus.pbin", (3, 8), "out/corpus.00003-of-00008.pbin"),
        ("out/corpus.pbin", (0, 1), "out/corpus.00000-of-00001.pbin"),  # the first of one
        ("corpus", (0, 2), "corpus.00000-of-00002.pbin"),  # no suffix: .pbin
        ("a.b.bin", (12, 100), "a.b.00012-of-00100.bin"),  # the last suffix kept, the rest is the stem
        ("c.pbin", (99999, 123456), "c.99999-of-123456.pbin"),  # wider than five digits: not cut
    ],
)
def test_shard_paths_by_hand(destination, shard, expected):
    from pathlib import Path

    from modalities.data.packing import shard_path

    assert shard_path(Path(destination), shard) == Path(expected)


@pytest.mark.parametrize(
    "text, documents, lines",
    [
        ('{"text": "a"}\n{"text": "b"}\n{"text": "c"}\n', [0, 1, 2], [1, 2, 3]),
        ('{"text": "a"}\n{"text": "b"}\n{"text": "c"}', [2], [3]),  # the last line, without a newline
        ('{"text": "a"}\r\n{"text": "b"}\r\n', [1, 0], [2, 1]),  # CR LF; in the order asked
        ('{"text": "a"}\nnot json\n{"text": "b"}\n{"text": "c"}\n', [0, 1, 2], [1, 3, 4]),  # skipped line 2
        ('{"text": "a"}\n', [], []),
    ],
)
def test_the_lines_of_documents_count_the_newlines_before_them(tmp_path, text, documents, lines):
    from modalities.data.packing import source_lines_of

    path = tmp_path / "c.jsonl"
    path.write_text(text, encoding="utf-8", newline="")
    create_raw_index(path, skip_malformed=True)
    assert source_lines_of(path, tmp_path / "c.idx", documents) == lines


def _settings(path, **fields):
    from modalities.data.configs.pack_encoded_data import PackEncodedDataSettings

    return PackEncodedDataSettings.model_validate({"src_path": str(path), "eod_token": EOD, "num_cpus": 3, **fields})


# (settings, command-line arguments) -> what pack_encoded_data is asked; a command-line value wins where given
PACK_AS_CONFIGURED = [
    ({}, {}, {"num_cpus": 3, "max_batches_in_flight": 3 + 4 + 4, "skip_bad_documents": False, "overwrite": False,
              "special_tokens_as_text": False, "tokenizer_engine": "auto", "jq_pattern": ".text",
              "processing_batch_size": 1000, "index_path": None, "shard": None}),
    ({}, {"num_cpus": 2}, {"num_cpus": 2, "max_batches_in_flight": 2 + 4 + 4}),
    ({"raw_samples_queue_size": 1, "processed_samples_queue_size": 2}, {"num_cpus": 1},
     {"num_cpus": 1, "max_batches_in_flight": 1 + 1 + 2}),
    ({"skip_bad_documents": True}, {}, {"skip_bad_documents": True}),
    ({}, {"skip_bad_documents": True}, {"skip_bad_documents": True}),
    ({"overwrite": True}, {}, {"overwrite": True}),
    ({}, {"overwrite": True}, {"overwrite": True}),
    ({"special_tokens_in_text": "as_text"}, {}, {"special_tokens_as_text": True}),
    ({}, {"special_tokens_in_text": "as_text"}, {"special_tokens_as_text": True}),
    ({"special_tokens_in_text": "as_text"}, {"special_tokens_in_text": "as_tokens"}, {"special_tokens_as_text": False}),
    ({"tokenizer_engine": "huggingface"}, {}, {"tokenizer_engine": "huggingface"}),
    ({"tokenizer_engine": "huggingface"}, {"tokenizer_engine": "tiktoken"}, {"tokenizer_engine": "tiktoken"}),
    ({"jq_pattern": ".m.t", "processing_batch_size": 7}, {}, {"jq_pattern": ".m.t", "processing_batch_size": 7}),
    ({}, {"shard": (1, 4)}, {"shard": (1, 4)}),
]


@pytest.mark.parametrize("fields, arguments, asked", PACK_AS_CONFIGURED)
def test_a_pack_config_and_the_command_line_by_hand(tmp_path, monkeypatch, fields, arguments, asked):
    from modalities.data import packing

    calls = []
    monkeypatch.setattr(packing, "pack_encoded_data", lambda **kwargs: calls.append(kwargs) or "result")
    path = _corpus(tmp_path, TEXTS)
    tokenizer = Characters()

    def on_start(n):
        return None

    assert packing.pack_as_configured(_settings(path, **fields), tokenizer, on_start=on_start, **arguments) == "result"
    (call,) = calls
    assert {name: call[name] for name in asked} == asked
    assert (call["src_path"], call["tokenizer"], call["eod_token"], call["on_start"]) == (path, tokenizer, EOD,
                                                                                         on_start)
    shard = arguments.get("shard")
    assert call["dst_path"] == (tmp_path / "c.00001-of-00004.pbin" if shard else tmp_path / "c.pbin")


@pytest.mark.parametrize("shard", [None, (1, 2)])
def test_a_pack_config_packs_into_its_destination_or_the_shards_path(tmp_path, shard):
    from modalities.data.packing import pack_as_configured

    path = _corpus(tmp_path, TEXTS)
    settings = _settings(path, dst_path=str(tmp_path / "out" / "x.pbin"), processing_batch_size=2, num_cpus=1)
    result = pack_as_configured(settings, Characters(), shard=shard)
    expected = tmp_path / "out" / ("x.00001-of-00002.pbin" if shard else "x.pbin")
    assert result.dst_path == expected
    assert _documents(expected) == [encode(t) + [0] for t in (TEXTS[2:] if shard else TEXTS)]


# --- the corpus sample the engines are compared on --------------------------------------------------------------


@pytest.mark.parametrize(
    "num_documents, first, end, most, expected",
    [
        (5, 0, 5, 128, [0, 1, 2, 3, 4]),  # fewer than the most: every one
        (5, 1, 4, 128, [1, 2, 3]),  # a shard's slice only
        (5, 2, 2, 128, []),  # an empty slice
        (5, 4, 5, 128, [4]),  # one document: the last
        (10, 0, 10, 3, [0, 4, 9]),  # 0, 4.5, 9 spread evenly; 4.5 rounds to the even 4
        (10, 0, 10, 2, [0, 9]),  # the first and the last
        (10, 0, 10, 1, [0]),
    ],
)
def test_the_engine_sample_spreads_evenly_over_the_slice(tmp_path, monkeypatch, num_documents, first, end, most,
                                                          expected):
    from modalities.data import bpe_engine
    from modalities.data.jq_pattern import compile_jq_pattern
    from modalities.data.packing import _sample_texts
    from modalities.data.raw_index import read_raw_index

    monkeypatch.setattr(bpe_engine, "SAMPLE_DOCUMENTS", most)
    texts = [f"t{i}" for i in range(num_documents)]
    path = _corpus(tmp_path, texts)
    index = read_raw_index(tmp_path / "c.idx")
    assert _sample_texts(path, compile_jq_pattern(".text"), index, first, end) == [texts[i] for i in expected]


# 3 characters each: the document that reaches the limit is the last taken
@pytest.mark.parametrize("limit, count", [(1, 1), (3, 1), (4, 2), (6, 2), (7, 3), (12, 4), (13, 4)])
def test_the_engine_sample_stops_at_its_characters(tmp_path, monkeypatch, limit, count):
    from modalities.data import bpe_engine
    from modalities.data.jq_pattern import compile_jq_pattern
    from modalities.data.packing import _sample_texts
    from modalities.data.raw_index import read_raw_index

    monkeypatch.setattr(bpe_engine, "SAMPLE_CHARACTERS", limit)
    path = _corpus(tmp_path, ["aaa", "bbb", "ccc", "ddd"])
    sample = _sample_texts(path, compile_jq_pattern(".text"), read_raw_index(tmp_path / "c.idx"), 0, 4)
    assert sample == ["aaa", "bbb", "ccc", "ddd"][:count]


def test_the_engine_sample_leaves_unreadable_documents_to_the_pack(tmp_path):
    from modalities.data.jq_pattern import compile_jq_pattern
    from modalities.data.packing import _sample_texts
    from modalities.data.raw_index import read_raw_index

    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "a"}\n{"other": 1}\n{"text": 5}\n{"text": "d"}\n')
    create_raw_index(path)
    assert _sample_texts(path, compile_jq_pattern(".text"), read_raw_index(tmp_path / "c.idx"), 0, 4) == ["a", "d"]


# --- one batch's ids as the file holds them ----------------------------------------------------------------------


@pytest.mark.parametrize("width, top", [(1, 255), (2, 65535), (4, 2**32 - 1)])
@pytest.mark.parametrize("flat", [False, True])  # lists of ids, or ids back to back with counts (encode_flat)
def test_the_largest_id_of_a_width_is_written_and_one_past_it_refused(width, top, flat):
    from modalities.data.packing import _flatten

    def encoded(ids):
        return (np.array(ids, dtype=np.int64), np.array([len(ids)], dtype=np.int64)) if flat else [ids]

    dtype = {1: "<u1", 2: "<u2", 4: "<u4"}[width]
    result = _flatten(encoded([top, 0, 1]), [0], [], 7, width)
    assert np.frombuffer(result.tokens, dtype=dtype).tolist() == [top, 0, 1, 7]
    assert result.doc_token_lengths.tolist() == [4]
    for outside in (top + 1, -1):
        with pytest.raises(DataError, match=rf"the tokenizer produced an id outside 0\.\.{top}, which the token width"):
            _flatten(encoded([1, outside]), [0], [], 7, width)


@pytest.mark.parametrize(
    "encoded, tokens, lengths, inside",
    [
        ([], [], [], []),  # no documents
        ([[]], [9], [1], []),  # one empty document: EOD alone
        ([[9]], [9], [1], []),  # ends with EOD: no second one
        ([[9, 9]], [9, 9], [2], []),  # a run of EODs at the end (padding) is not "inside"
        ([[9, 1, 9]], [9, 1, 9], [3], [0]),
        ([[1], [9, 1]], [1, 9, 9, 1, 9], [2, 3], [1]),
        ([[1, 2], [], [3]], [1, 2, 9, 9, 3, 9], [3, 1, 2], []),
    ],
)
def test_flatten_by_hand(encoded, tokens, lengths, inside):
    from modalities.data.packing import _flatten

    result = _flatten(encoded, list(range(len(encoded))), [], 9, 1)
    assert np.frombuffer(result.tokens, dtype=np.uint8).tolist() == tokens
    assert result.doc_token_lengths.tolist() == lengths and result.with_eod_inside == inside
    flat = (np.array([t for e in encoded for t in e], dtype=np.int64), np.array([len(e) for e in encoded], dtype=np.int64))
    again = _flatten(flat, list(range(len(encoded))), [], 9, 1)  # the same, handed over back to back
    assert (again.tokens, again.doc_token_lengths.tolist(), again.with_eod_inside) == (result.tokens, lengths, inside)


def test_flatten_hands_on_the_batchs_errors_in_document_order():
    from modalities.data.packing import _flatten

    errors = [(7, "b"), (3, "a")]
    assert _flatten([[1]], [5], errors, 9, 1).errors == [(3, "a"), (7, "b")]
