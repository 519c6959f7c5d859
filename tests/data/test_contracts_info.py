"""The info file's and `data inspect`'s figures: tokenizer identities compared and described by hand, the
folder digest's rules, and document-length statistics against numpy (nearest rank, histogram bins)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modalities.data.errors import DataError
from modalities.data.pbin_info import (
    FORMAT,
    common_tokenizer,
    describe_tokenizer,
    files_digest,
    info_path,
    read_info,
    same_tokenizer,
    write_derived_info,
    write_info,
)
from modalities.data.pbin_stats import length_histogram, length_stats, sample_counts

A = {"kind": "huggingface", "source": "/tok/a", "fingerprint": "aaa", "vocab_size": 1000, "eod_token": "<e>",
     "eod_id": 0}
A_ELSEWHERE = {**A, "source": "/other/place"}
B = {**A, "fingerprint": "bbb"}


@pytest.mark.parametrize(
    "first, second, same",
    [
        (A, A_ELSEWHERE, True),  # the fingerprint decides, not the folder
        (A, B, False),
        (None, A, None),
        (A, None, None),
        ({}, A, None),
        ({"kind": "custom", "fingerprint": None}, A, None),
        (A, {"kind": "custom"}, None),
    ],
)
def test_same_tokenizer_by_hand(first, second, same):
    assert same_tokenizer(first, second) is same


@pytest.mark.parametrize(
    "identity, text",
    [
        (None, "an unrecorded tokenizer"),
        ({}, "an unrecorded tokenizer"),
        ({"kind": "custom"}, "custom tokenizer ?"),
        ({"source": "/t"}, "? tokenizer /t"),
        ({"kind": "huggingface", "source": "/t", "vocab_size": 50257},
         "huggingface tokenizer /t (50,257 ids)"),
        (A, "huggingface tokenizer /tok/a (1,000 ids, EOD '<e>' = 0)"),
        ({**A, "vocab_size": None}, "huggingface tokenizer /tok/a"),  # no size: no parenthesis at all
    ],
)
def test_describe_tokenizer_by_hand(identity, text):
    assert describe_tokenizer(identity) == text


def _packed(tmp_path, name: str, tokenizer: dict | None):
    path = tmp_path / f"{name}.pbin"
    path.write_bytes(b"")
    if tokenizer is not None:
        write_info(path, {"tokenizer": tokenizer})
    return path


@pytest.mark.parametrize(
    "tokenizers, result",
    [
        ([], None),
        ([A], A),
        ([A, A_ELSEWHERE], A),
        ([A, None], None),  # one file without an info file: the result has none either
        ([None, A], None),
        ([{"kind": "custom", "fingerprint": None}, A], {"kind": "custom", "fingerprint": None}),  # unknown matches
    ],
)
def test_the_tokenizer_files_share(tmp_path, tokenizers, result):
    paths = [_packed(tmp_path, str(i), t) for i, t in enumerate(tokenizers)]
    assert common_tokenizer(paths) == result


@pytest.mark.parametrize("tokenizers", [[A, B], [A, A, B], [A, None, B], [None, A, B]])
def test_files_of_two_tokenizers_are_refused_wherever_the_other_stands(tmp_path, tokenizers):
    paths = [_packed(tmp_path, str(i), t) for i, t in enumerate(tokenizers)]
    first = tokenizers.index(A)
    with pytest.raises(DataError, match=rf"{first}\.pbin was packed with huggingface tokenizer /tok/a .* and "
                                        rf".*{len(tokenizers) - 1}\.pbin with .*ids mean different tokens"):
        common_tokenizer(paths)


def test_info_files_written_read_and_removed(tmp_path):
    from modalities import __version__

    pbin = tmp_path / "c.pbin"
    assert info_path(pbin) == tmp_path / "c.pbin.info.json"
    assert read_info(pbin) is None  # none written yet
    assert write_info(pbin, {"documents": 3}) == info_path(pbin)
    data = read_info(pbin)
    assert (data["format"], data["documents"], data["modalities"]) == (FORMAT, 3, __version__)
    assert not list(tmp_path.glob(".tmp-*"))
    write_derived_info(pbin, A, 2, 5, 9, {"merged": ["x"]})
    assert {k: v for k, v in read_info(pbin).items() if k not in ("written", "modalities")} == {
        "format": FORMAT, "tokenizer": A, "token_width": 2, "documents": 5, "tokens": 9, "source": {"merged": ["x"]}}
    write_derived_info(pbin, None, 2, 5, 9, {})  # tokenizer unknown: the older info file goes
    assert not info_path(pbin).exists()
    write_derived_info(pbin, None, 2, 5, 9, {})  # and nothing to remove is fine


@pytest.mark.parametrize("text", ["[]", '"text"', "{}", '{"format": "modalities.pbin.info/2"}'])
def test_an_info_file_not_ours_is_named(tmp_path, text):
    info_path(tmp_path / "c.pbin").write_text(text)
    with pytest.raises(DataError, match=r"c\.pbin\.info\.json: not a modalities.pbin.info/1 info file"):
        read_info(tmp_path / "c.pbin")


def test_the_digest_of_one_file_is_sha256_of_the_settings_its_name_and_its_bytes(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_bytes(b"{}")
    expected = hashlib.sha256(json.dumps({"a": 1}).encode() + b"tokenizer.json\0{}\0").hexdigest()
    assert files_digest(path, extra={"a": 1}) == expected
    assert files_digest(path) == hashlib.sha256(b"null" + b"tokenizer.json\0{}\0").hexdigest()


def test_the_digest_of_a_folder_follows_names_and_contents_only(tmp_path):
    def folder(name, files):
        path = tmp_path / name
        path.mkdir()
        for file, content in files.items():
            (path / file).write_bytes(content)
        return path

    base = files_digest(folder("one", {"a.json": b"1", "b.txt": b"2"}))
    assert files_digest(folder("two", {"b.txt": b"2", "a.json": b"1"})) == base  # another folder, same files
    assert files_digest(folder("three", {"a.json": b"1", "c.txt": b"2"})) != base  # a file renamed
    assert files_digest(folder("four", {"a.json": b"1", "b.txt": b"3"})) != base  # a content changed
    assert files_digest(folder("five", {"a.json": b"1", "b.txt": b"2", "w.safetensors": b"w"})) == base
    with_subfolder = folder("six", {"a.json": b"1", "b.txt": b"2"})
    (with_subfolder / "nested").mkdir()
    (with_subfolder / "nested" / "x.json").write_bytes(b"ignored")
    assert files_digest(with_subfolder) == base
    assert files_digest(folder("empty", {})) == hashlib.sha256(b"null").hexdigest()


# --- document lengths ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lengths, stats",
    [
        ([7], (1, 7, 7.0, 7.0, 7, 7)),  # one document
        ([1, 3], (2, 1, 2.0, 2.0, 3, 3)),  # an even count: the median between the middle two
        ([0, 0, 9], (3, 0, 0.0, 3.0, 9, 9)),
        (list(range(1, 101)), (100, 1, 50.5, 50.5, 99, 100)),  # 100: the 99th is p99
        (list(range(1, 102)), (101, 1, 51.0, 51.0, 100, 101)),  # 101: ceil(99.99) = the 100th
    ],
)
def test_length_statistics_by_hand(lengths, stats):
    s = length_stats(np.array(lengths))
    assert (s.count, s.min, s.median, s.mean, s.p99, s.max) == stats


@settings(max_examples=200)
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=300))
def test_length_statistics_are_numpys(lengths):
    s = length_stats(np.array(lengths))
    values = np.array(lengths)
    assert (s.count, s.min, s.max) == (len(lengths), values.min(), values.max())
    assert s.median == np.median(values) and s.mean == pytest.approx(values.mean(), rel=1e-12)
    assert s.p99 == np.percentile(values, 99, method="inverted_cdf")  # the nearest-rank definition


@pytest.mark.parametrize(
    "lengths, rows",
    [
        ([], []),
        ([0], [(0, 0, 1)]),
        ([1], [(1, 1, 1)]),
        ([2, 3], [(2, 3, 2)]),  # both ends of one bin
        ([3, 4], [(2, 3, 1), (4, 7, 1)]),  # either side of a boundary
        ([7, 8], [(4, 7, 1), (8, 15, 1)]),
        ([0, 4], [(0, 0, 1), (1, 1, 0), (2, 3, 0), (4, 7, 1)]),  # empty bins between are kept
        ([1024], [(1024, 2047, 1)]),
    ],
)
def test_length_histogram_by_hand(lengths, rows):
    assert length_histogram(np.array(lengths, dtype=np.int64)) == rows


@settings(max_examples=200)
@given(st.lists(st.integers(0, 5000), min_size=1, max_size=200))
def test_length_histogram_is_numpys_over_power_of_two_edges(lengths):
    rows = length_histogram(np.array(lengths))
    edges = [0, 1] + [2**k for k in range(1, 14)]  # bins [0, 1), [1, 2), [2, 4), [4, 8), ...
    counts, _ = np.histogram(lengths, bins=edges)
    first = next(i for i, c in enumerate(counts) if c)
    last = max(i for i, c in enumerate(counts) if c)
    assert rows == [(edges[i], edges[i + 1] - 1, int(counts[i])) for i in range(first, last + 1)]


@pytest.mark.parametrize(
    "num_tokens, documents, sequence_length, counts",
    [
        (0, [], 4, (0, 0, 0)),
        (5, [(0, 5)], 4, (1, 1, 1)),  # one block of 5 exactly; one of 4 (disjoint); Megatron: one filled block
        (4, [(0, 4)], 4, (0, 1, 0)),  # one short of a block of 5
        (9, [(0, 4), (4, 5)], 4, (2, 2, 1)),  # Megatron: 4 < 5, then 9 > 5: the block at 0
        (10, [(0, 5), (5, 5)], 4, (2, 2, 2)),
    ],
)
def test_sample_counts_by_hand(num_tokens, documents, sequence_length, counts):
    result = sample_counts(num_tokens, np.array(documents, dtype=np.int64).reshape(-1, 2), sequence_length)
    assert (result.sequence_length, result.continuous, result.continuous_disjoint, result.megatron) == (
        sequence_length, *counts)


def test_sample_counts_leave_out_a_megatron_block_past_the_end():
    # rows that overlap (see test_contracts_datasets): starts 0 and 6 at blocks of 4 over 8 tokens
    assert sample_counts(8, np.array([[0, 3], [6, 2], [0, 2]]), 3).megatron == 1


def test_an_info_file_is_readable_json_with_its_text_as_written(tmp_path):
    """Indented by two, UTF-8 text as it is (an EOD token or a path in any script), one line end at the end;
    the time it was written to the second."""
    import re

    pbin = tmp_path / "c.pbin"
    write_info(pbin, {"tokenizer": {"eod_token": "<|fin|>é", "source": "/données/日本"}, "documents": 1})
    text = info_path(pbin).read_text(encoding="utf-8")
    assert '"eod_token": "<|fin|>é"' in text and "/données/日本" in text and "\\u" not in text
    assert text.startswith('{\n  "format": "modalities.pbin.info/1",\n  "tokenizer": {\n    "eod_token"')
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", json.loads(text)["written"])
    write_info(pbin, {"documents": 2})  # an older info file is replaced whole
    assert "tokenizer" not in read_info(pbin) and read_info(pbin)["documents"] == 2


@pytest.mark.parametrize("kind", ["huggingface", "sentencepiece", "custom", None])
@pytest.mark.parametrize("exists", [True, False])
def test_the_recorded_tokenizer_to_decode_with(tmp_path, kind, exists):
    from modalities.data.pbin_info import recorded_tokenizer_path

    source = tmp_path / "tok"
    if exists:
        source.mkdir()
    info = {"tokenizer": {"kind": kind, "source": str(source)}}
    usable = exists and kind in ("huggingface", "sentencepiece")
    assert recorded_tokenizer_path(info) == (str(source) if usable else None)


@pytest.mark.parametrize("info", [None, {}, {"tokenizer": None}, {"tokenizer": {"kind": "huggingface"}},
                                  {"tokenizer": {"kind": "huggingface", "source": 5}}])
def test_no_recorded_tokenizer_to_decode_with(info):
    from modalities.data.pbin_info import recorded_tokenizer_path

    assert recorded_tokenizer_path(info) is None

