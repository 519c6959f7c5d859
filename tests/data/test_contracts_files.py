"""Contracts of the file tools and the small parsers: chunks (against numpy.array_split), shuffles (against
Python's and numpy's generators applied by hand), the raw index of a JSONL file, jq paths and the collators,
with the boundary cases worked out by hand."""

from __future__ import annotations

import hashlib
import random
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from modalities.data.collate import GPT2LLMCollateFn, LossMaskingCollateFnWrapper, mask_outside_markers
from modalities.data.errors import DataError
from modalities.data.jq_pattern import JqPatternError, apply_jq_pattern, compile_jq_pattern
from modalities.data.pbin import PackedFile, PackedFileWriter
from modalities.data.raw_index import create_raw_index, default_index_path, read_raw_index
from modalities.data.shuffling import (
    chunk_range,
    create_shuffled_dataset_chunk,
    create_shuffled_jsonl_dataset_chunk,
    hashed_seed,
    shuffle_jsonl_data,
    shuffle_tokenized_data,
)

# --- chunks ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "num_chunks, num_samples, ranges",
    [
        (1, 0, [(0, 0)]),
        (1, 5, [(0, 5)]),
        (3, 9, [(0, 3), (3, 6), (6, 9)]),  # divisible
        (3, 10, [(0, 4), (4, 7), (7, 10)]),  # one more: the first chunk is longer
        (3, 11, [(0, 4), (4, 8), (8, 11)]),  # one less than divisible
        (3, 2, [(0, 1), (1, 2), (2, 2)]),  # more chunks than samples: the last is empty
        (2, 0, [(0, 0), (0, 0)]),
    ],
)
def test_chunks_worked_out_by_hand(num_chunks, num_samples, ranges):
    assert [chunk_range(num_chunks, num_samples, i) for i in range(num_chunks)] == ranges


@settings(max_examples=200)
@given(st.integers(1, 40), st.integers(0, 200))
def test_chunks_are_numpys_array_split(num_chunks, num_samples):
    parts = np.array_split(np.arange(num_samples), num_chunks)
    starts = np.cumsum([0] + [len(p) for p in parts])
    assert [chunk_range(num_chunks, num_samples, i) for i in range(num_chunks)] == [
        (int(starts[i]), int(starts[i + 1])) for i in range(num_chunks)
    ]


@pytest.mark.parametrize(
    "num_chunks, chunk_id, message",
    [(0, 0, "num_chunks must be at least 1"), (-1, 0, "num_chunks must be at least 1"),
     (3, 3, r"chunk_id 3 must be in 0..2"), (3, -1, r"chunk_id -1 must be in 0..2")],
)
def test_chunks_outside_the_range_are_refused(num_chunks, chunk_id, message):
    with pytest.raises(DataError, match=message):
        chunk_range(num_chunks, 10, chunk_id)


@pytest.mark.parametrize("parts", [[], ["1"], ["5", "0"], ["None", "3"], ["ü"]])
def test_the_hashed_seed_sums_sha256_values_modulo_2_32_minus_1(parts):
    total = 0
    for part in parts:
        total += int.from_bytes(hashlib.sha256(part.encode("utf-8")).digest(), "big")
    assert hashed_seed(parts) == total % (2**32 - 1)
    assert 0 <= hashed_seed(parts) < 2**32 - 1
    assert hashed_seed(parts, max_seed=7) == total % 7


# --- shuffles ----------------------------------------------------------------------------------------------------


def _pbin(path, documents, width=2):
    writer = PackedFileWriter(path, width)
    writer.write_tokens(np.array([t for d in documents for t in d], dtype=np.int64), [len(d) for d in documents])
    writer.close()
    return path


def _documents(path) -> list[list[int]]:
    packed = PackedFile(path)
    return [packed.document(i).tolist() for i in range(packed.num_documents)]


DOCUMENTS = [[1, 0], [2, 2, 0], [3, 0], [4, 4, 4, 4, 0], [5, 0], [6, 6, 0], [7, 0]]


@pytest.mark.parametrize("batch_size", [0, 1, 3, 7, 8, 100])  # below one, one, not dividing, equal, one past
@pytest.mark.parametrize("seed", [0, 11])
def test_a_shuffled_pbin_has_pythons_order_whatever_the_batch_size(tmp_path, batch_size, seed):
    source = _pbin(tmp_path / "in.pbin", DOCUMENTS)
    order = list(range(len(DOCUMENTS)))
    random.Random(seed).shuffle(order)
    assert shuffle_tokenized_data(source, tmp_path / "out.pbin", batch_size=batch_size, seed=seed) == 7
    assert _documents(tmp_path / "out.pbin") == [DOCUMENTS[i] for i in order]


@pytest.mark.parametrize("documents", [[], [[9, 0]]])
def test_shuffling_no_document_or_one(tmp_path, documents):
    source = _pbin(tmp_path / "in.pbin", documents)
    (tmp_path / "out.pbin").write_bytes(b"an older output is replaced")
    assert shuffle_tokenized_data(source, tmp_path / "out.pbin", seed=1) == len(documents)
    assert _documents(tmp_path / "out.pbin") == documents


def test_a_shuffle_into_its_own_input_is_refused(tmp_path):
    source = _pbin(tmp_path / "in.pbin", DOCUMENTS)
    with pytest.raises(DataError, match="in.pbin is also an input"):
        shuffle_tokenized_data(source, tmp_path / "in.pbin", seed=1)
    (tmp_path / "in.jsonl").write_text("{}\n")
    with pytest.raises(DataError, match="in.jsonl is also an input"):
        shuffle_jsonl_data(tmp_path / "in.jsonl", tmp_path / "in.jsonl", seed=1)
    assert _documents(source) == DOCUMENTS


@pytest.mark.parametrize(
    "text, lines",
    [
        ("", []),
        ('{"a": 1}\n', [b'{"a": 1}\n']),
        ('{"a": 1}\n{"a": 2}\n{"a": 3}\n', [b'{"a": 1}\n', b'{"a": 2}\n', b'{"a": 3}\n']),
        ('{"a": 1}\r\n{"a": 2}', [b'{"a": 1}\r\n', b'{"a": 2}']),  # \r\n kept; a last line without newline
    ],
)
def test_a_shuffled_jsonl_has_pythons_order_of_its_lines(tmp_path, text, lines):
    source = tmp_path / "in.jsonl"
    source.write_bytes(text.encode())
    order = list(range(len(lines)))
    random.Random(4).shuffle(order)
    assert shuffle_jsonl_data(source, tmp_path / "sub" / "out.jsonl", seed=4) == len(lines)
    assert (tmp_path / "sub" / "out.jsonl").read_bytes() == b"".join(lines[i] for i in order)


def _chunk_order(count: int, global_seed, chunk_id: int) -> list[int]:
    order = np.arange(count)
    seed = int.from_bytes(hashlib.sha256(str(global_seed).encode()).digest(), "big") + int.from_bytes(
        hashlib.sha256(str(chunk_id).encode()).digest(), "big")
    np.random.default_rng(seed % (2**32 - 1)).shuffle(order)
    return order.tolist()


@pytest.mark.parametrize("chunk_id", [0, 1, 2])  # first, middle, last
def test_a_chunk_takes_each_files_part_and_shuffles_them_with_the_hashed_seed(tmp_path, chunk_id):
    a = _pbin(tmp_path / "a.pbin", DOCUMENTS)  # 7 documents: chunks of 3, 2, 2
    b = _pbin(tmp_path / "b.pbin", [[8, 0], [9, 0], [10, 0]])  # 3 documents: 1, 1, 1
    parts = {0: DOCUMENTS[0:3] + [[8, 0]], 1: DOCUMENTS[3:5] + [[9, 0]], 2: DOCUMENTS[5:7] + [[10, 0]]}[chunk_id]
    order = _chunk_order(len(parts), 5, chunk_id)
    assert create_shuffled_dataset_chunk([a, b], tmp_path / "c.pbin", chunk_id, 3, global_seed=5) == len(parts)
    assert _documents(tmp_path / "c.pbin") == [parts[i] for i in order]

    lines_a = [f'{{"d": {i}}}\n'.encode() for i in range(7)]
    lines_b = [f'{{"e": {i}}}\n'.encode() for i in range(3)]
    (tmp_path / "a.jsonl").write_bytes(b"".join(lines_a))
    (tmp_path / "b.jsonl").write_bytes(b"".join(lines_b))
    line_parts = {0: lines_a[0:3] + lines_b[0:1], 1: lines_a[3:5] + lines_b[1:2], 2: lines_a[5:7] + lines_b[2:3]}
    mine = line_parts[chunk_id]
    assert create_shuffled_jsonl_dataset_chunk([tmp_path / "a.jsonl", tmp_path / "b.jsonl"], tmp_path / "c.jsonl",
                                               chunk_id, 3, global_seed=5) == len(mine)
    assert (tmp_path / "c.jsonl").read_bytes() == b"".join(mine[i] for i in order)


def test_chunks_that_cannot_be_made_are_refused(tmp_path):
    a = _pbin(tmp_path / "a.pbin", [[1, 0], [2, 0]])
    wide = _pbin(tmp_path / "w.pbin", [[1, 0]], width=4)
    with pytest.raises(DataError, match=r"w.pbin: 4-byte tokens, but the files before it have 2-byte tokens"):
        create_shuffled_dataset_chunk([a, wide], tmp_path / "c.pbin", 0, 1)
    with pytest.raises(DataError, match="chunk 2 has no documents; use fewer than 3 chunks"):
        create_shuffled_dataset_chunk([a], tmp_path / "c.pbin", 2, 3)
    assert create_shuffled_dataset_chunk([a], tmp_path / "c.pbin", 1, 3) == 1  # the last chunk that holds one
    with pytest.raises(DataError, match="a.pbin is also an input"):
        create_shuffled_dataset_chunk([a], a, 0, 1)
    (tmp_path / "a.jsonl").write_text('{"x": 1}\n')
    with pytest.raises(DataError, match="chunk 1 has no lines; use fewer than 2 chunks"):
        create_shuffled_jsonl_dataset_chunk([tmp_path / "a.jsonl"], tmp_path / "c.jsonl", 1, 2)
    with pytest.raises(DataError, match="a.jsonl is also an input"):
        create_shuffled_jsonl_dataset_chunk([tmp_path / "a.jsonl"], tmp_path / "a.jsonl", 0, 1)


# --- the raw index -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, index", [("c.jsonl", "c.idx"), ("c", "c.idx"), ("a.b.jsonl", "a.b.idx")])
def test_the_default_index_path(tmp_path, name, index):
    assert default_index_path(tmp_path / name) == tmp_path / index


@pytest.mark.parametrize(
    "text, entries",
    [
        ("", []),
        ('{"a": 1}\n', [(0, 8)]),
        ('{"a": 1}', [(0, 8)]),  # a last line without newline
        ('{"a": 1}\r\n[2]\n', [(0, 8), (10, 3)]),  # \r\n is not part of the line
        ('1\n"x"\n{}\n', [(0, 1), (2, 3), (6, 2)]),  # any JSON value is a document
    ],
)
def test_raw_index_entries_by_hand(tmp_path, text, entries):
    path = tmp_path / "c.jsonl"
    path.write_bytes(text.encode())
    result = create_raw_index(path)
    assert (result.index_path, result.num_documents, result.skipped_lines) == (tmp_path / "c.idx", len(entries), [])
    assert read_raw_index(result.index_path, path).tolist() == [list(e) for e in entries]


@pytest.mark.parametrize(
    "text, line",
    [("\n", 1), ('{"a": 1}\n\n', 2), ('{"a": 1}\n{"a": ', 2), ('{"a": 1}\n\xff\n', 2)],
)
def test_the_first_line_that_is_not_json_is_named(tmp_path, text, line):
    path = tmp_path / "c.jsonl"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError, match=f"c.jsonl:{line}: not a valid JSON line .*--skip-malformed"):
        create_raw_index(path)
    assert not (tmp_path / "c.idx").exists() and not list(tmp_path.glob(".*"))
    skipped = create_raw_index(path, skip_malformed=True)
    assert skipped.skipped_lines == [line] and skipped.num_documents == line - 1


def test_progress_is_reported_every_8192_lines_and_at_the_end(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b"1\n" * 8193)
    calls = []
    create_raw_index(path, on_progress=lambda done, documents: calls.append((done, documents)))
    assert calls == [(2 * 8192, 8192), (2 * 8193, 8193)]


def test_an_existing_index_and_a_missing_file_are_refused(tmp_path):
    path = tmp_path / "c.jsonl"
    with pytest.raises(DataError, match="c.jsonl: JSONL file not found"):
        create_raw_index(path)
    path.write_text("1\n2\n")
    create_raw_index(path, index_path=tmp_path / "sub" / "own.idx")  # a folder of its own is made
    with pytest.raises(DataError, match="own.idx: index file already exists"):
        create_raw_index(path, index_path=tmp_path / "sub" / "own.idx")
    path.write_text("1\n2\n3\n")
    assert create_raw_index(path, index_path=tmp_path / "sub" / "own.idx", overwrite=True).num_documents == 3
    with pytest.raises(DataError, match="none.idx: index file not found"):
        read_raw_index(tmp_path / "none.idx")


@pytest.mark.parametrize("size, fits", [(9, True), (8, False)])  # the entry ends exactly at the end; one past it
def test_an_index_entry_past_the_end_of_its_file_is_named(tmp_path, size, fits):
    import pickle

    (tmp_path / "c.idx").write_bytes(pickle.dumps([(0, 4), (5, 4)]))
    (tmp_path / "c.jsonl").write_bytes(b"x" * size)
    assert read_raw_index(tmp_path / "c.idx").tolist() == [[0, 4], [5, 4]]  # without the file, not checked
    if fits:
        assert read_raw_index(tmp_path / "c.idx", tmp_path / "c.jsonl").tolist() == [[0, 4], [5, 4]]
    else:
        with pytest.raises(DataError, match=r"c.idx: entry 1 \(offset 5, length 4\) lies beyond the end of .*c.jsonl "
                                            r"\(8 bytes\)"):
            read_raw_index(tmp_path / "c.idx", tmp_path / "c.jsonl")


# --- jq paths ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern, steps",
    [
        (".", ()),
        (".text", ("text",)),
        (".meta.body", ("meta", "body")),
        (".a[0]", ("a", 0)),
        (".a[12][3]", ("a", 12, 3)),
        (".[0]", (0,)),  # the first element of a top-level list, as jq reads it
        (".a.[1]", ("a", 1)),
        ('.["a key"]', ("a key",)),
        ('.a["b \\"c\\""]', ("a", 'b "c"')),
        ("._x1", ("_x1",)),
    ],
)
def test_jq_patterns_that_parse(pattern, steps):
    assert compile_jq_pattern(pattern) == steps


@pytest.mark.parametrize(
    "pattern, message",
    [
        ("text", "must start with '.'"),
        ("", "must start with '.'"),
        (None, "must start with '.'"),
        (".a.", r"cannot read '\.'"),
        (".1a", r"cannot read '\.1a'"),
        (".a[-1]", r"cannot read '\[-1\]'"),
        (".a | .b", r"cannot read ' \| \.b'"),
    ],
)
def test_jq_patterns_outside_the_subset_are_named(pattern, message):
    with pytest.raises(JqPatternError, match=message):
        compile_jq_pattern(pattern)


DOCUMENT = {"text": "t", "list": ["x", "y"], "nested": {"inner": [{"deep": "d"}]}}


@pytest.mark.parametrize(
    "steps, value",
    [((), DOCUMENT), (("text",), "t"), (("list", 0), "x"), (("list", 1), "y"), (("nested", "inner", 0, "deep"), "d")],
)
def test_jq_steps_that_reach_a_value(steps, value):
    assert apply_jq_pattern(steps, DOCUMENT) == value


@pytest.mark.parametrize(
    "steps, message",
    [
        (("missing",), "no field 'missing' at the top level"),
        (("list", 2), r"no element \[2\] at .list"),  # one past the last element
        (("text", 0), r"no element \[0\] at .text"),  # a position asked of a string
        (("list", "x"), "no field 'x' at .list"),  # a key asked of a list
        (("nested", "inner", 0, "deep", "x"), r"no field 'x' at .nested.inner\[0\].deep"),
        ((0,), r"no element \[0\] at the top level"),
    ],
)
def test_jq_steps_that_miss_name_the_path(steps, message):
    with pytest.raises(KeyError, match=message):
        apply_jq_pattern(steps, DOCUMENT)


# --- collators -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "samples, inputs, targets",
    [
        ([[1, 2]], [[1]], [[2]]),  # one sample of the shortest length
        ([[1, 2, 3], [4, 5, 6]], [[1, 2], [4, 5]], [[2, 3], [5, 6]]),
        ([np.array([7, 8, 9], dtype=np.uint16)], [[7, 8]], [[8, 9]]),
    ],
)
def test_the_collator_shifts_by_one_token(samples, inputs, targets):
    batch = GPT2LLMCollateFn("ids", "targets")([{"ids": s} for s in samples])
    assert batch.samples["ids"].tolist() == inputs and batch.targets["targets"].tolist() == targets
    assert batch.samples["ids"].dtype == batch.targets["targets"].dtype == torch.int64
    assert list(batch.samples) == ["ids"] and list(batch.targets) == ["targets"]


def test_the_collator_names_a_missing_key_and_unequal_lengths():
    with pytest.raises(KeyError, match=r"the samples have no key 'ids' \(they have \['other', 'x'\]\)"):
        GPT2LLMCollateFn("ids", "t")([{"x": [1, 2], "other": [3]}])
    with pytest.raises(ValueError, match="samples under 'ids' differ in length"):
        GPT2LLMCollateFn("ids", "t")([{"ids": [1, 2, 3]}, {"ids": [1, 2]}])


B, E, I = 1, 2, -100  # begin marker, end marker, ignore index


@pytest.mark.parametrize(
    "row, kept",
    [
        ([5, B, 6, 7, E, 8], [I, I, 6, 7, I, I]),  # strictly inside; the markers themselves are not kept
        ([B, 6, E], [I, 6, I]),  # markers at the first and the last position
        ([B, E, 6], [I, I, I]),  # an empty pair
        ([5, B, 6, E, B, 7, E], [I, I, 6, I, I, 7, I]),  # two pairs, the second right after the first
        ([B, 6, 7], [I, 6, 7]),  # open at the row's end: kept to the end
        ([6, 7, B], [I, I, I]),  # a begin at the last position opens nothing
    ],
)
def test_loss_masking_rows_worked_out_by_hand(row, kept):
    other = [B, 9, E] + [5] * (len(row) - 3)  # a second row: the batch holds both markers
    masked = mask_outside_markers(torch.tensor([row, other]), B, E, I)
    assert masked[0].tolist() == kept
    assert masked[1].tolist() == [I, 9, I] + [I] * (len(row) - 3)


@pytest.mark.parametrize("batch, which", [([[5, B, 6]], "end"), ([[5, E, 6]], "begin"), ([[5, 6]], "begin")])
def test_a_batch_without_a_marker_is_left_out_of_the_loss_with_a_warning(batch, which):
    token = B if which == "begin" else E
    with pytest.warns(UserWarning, match=f"no {which} marker \\(token {token}\\) in this batch") as warned:
        masked = mask_outside_markers(torch.tensor(batch), B, E, I)
    assert masked.tolist() == [[I] * len(batch[0])]
    assert warned[0].filename == __file__  # the warning points at the caller


@pytest.mark.parametrize("row", [[E, 5, B, 6], [B, 5, B, 6, E], [B, E, E]])
def test_markers_out_of_order_are_refused(row):
    with pytest.raises(ValueError, match="an end marker comes before its begin marker, or two begin markers"):
        mask_outside_markers(torch.tensor([row]), B, E, I)


class _Tokenizer:
    def get_token_id(self, token):
        return {"<b>": B, "<e>": E, "<same>": B}[token]


class _Markers:
    b_include_to_loss_token = "<b>"
    e_include_to_loss_token = "<e>"


@pytest.mark.parametrize("mask_tokens",
                         [_Markers(), {"b_include_to_loss_token": "<b>", "e_include_to_loss_token": "<e>"}])
def test_the_masking_collator_masks_the_named_targets_only(mask_tokens):
    collate = LossMaskingCollateFnWrapper(GPT2LLMCollateFn("ids", "target"), ["target"], I, mask_tokens, _Tokenizer())
    batch = collate([{"ids": [0, B, 6, 7, E, 8]}])
    assert batch.samples["ids"].tolist() == [[0, B, 6, 7, E]]  # inputs untouched
    assert batch.targets["target"].tolist() == [[I, 6, 7, I, I]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        collate([{"ids": [0, B, 6, E]}])  # both markers in the targets: no warning


def test_the_masking_collator_refuses_one_token_for_both_markers_and_an_unknown_target():
    with pytest.raises(ValueError, match=r"the begin \('<same>'\) and end \('<b>'\) markers are the same token 1"):
        LossMaskingCollateFnWrapper(GPT2LLMCollateFn("ids", "t"), ["t"], I,
                                    {"b_include_to_loss_token": "<same>", "e_include_to_loss_token": "<b>"},
                                    _Tokenizer())
    collate = LossMaskingCollateFnWrapper(GPT2LLMCollateFn("ids", "t"), ["u"], I, _Markers(), _Tokenizer())
    with pytest.raises(KeyError, match=r"the batch has no target 'u' \(it has \['t'\]\)"):
        collate([{"ids": [B, 5, E]}])


@pytest.mark.parametrize("length, shown", [(0, ""), (119, "x" * 119), (120, "x" * 117 + "..."),
                                           (121, "x" * 117 + "...")])
def test_a_json_error_in_a_message_is_cut_to_120_characters(length, shown):
    from modalities.data.raw_index import _short

    assert _short(ValueError("x" * length)) == shown


@pytest.mark.parametrize(
    "text, kind, names",
    [
        ("a\nsub/b\n", "pbin", ["a.pbin", "sub/b.pbin"]),
        ("a.jsonl\n\n  b.txt  \n", "jsonl", ["a.jsonl", "b.jsonl"]),  # blank lines skipped, spaces trimmed
        ("x.y.jsonl", "pbin", ["x.y.pbin"]),  # the last suffix replaced; no newline at the end
        ("", "pbin", []),
        ("\n \n", "jsonl", []),
    ],
)
def test_a_file_list_names_files_under_the_root_with_the_kinds_suffix(tmp_path, text, kind, names):
    from modalities.data.shuffling import listed_files

    (tmp_path / "list.txt").write_text(text, encoding="utf-8")
    assert listed_files(tmp_path / "list.txt", tmp_path / "root", kind) == [tmp_path / "root" / n for n in names]


TOKENIZER = {"kind": "custom", "source": "x", "fingerprint": "f"}


def _with_info(path):
    from modalities.data.pbin_info import write_info

    write_info(path, {"tokenizer": TOKENIZER})
    return path


def test_derived_files_record_what_they_were_made_from(tmp_path):
    from modalities.data.pbin_info import read_info

    a = _with_info(_pbin(tmp_path / "a.pbin", DOCUMENTS))  # 7 documents, 19 tokens
    b = _with_info(_pbin(tmp_path / "b.pbin", [[8, 0], [9, 0], [10, 0]]))

    def recorded(path):
        info = read_info(path)
        return (info["tokenizer"], info["token_width"], info["documents"], info["tokens"], info["source"])

    shuffle_tokenized_data(a, tmp_path / "s.pbin", seed=4)
    assert recorded(tmp_path / "s.pbin") == (TOKENIZER, 2, 7, 19, {"shuffled": str(a.resolve()), "seed": 4})
    create_shuffled_dataset_chunk([a, b], tmp_path / "c.pbin", 1, 3, global_seed=5)  # [3, 5) of a, [1, 2) of b
    assert recorded(tmp_path / "c.pbin") == (TOKENIZER, 2, 3, 5 + 2 + 2, {
        "chunk": [1, 3], "of": [str(a.resolve()), str(b.resolve())], "seed": 5})


@pytest.mark.parametrize("tool", ["pbin", "jsonl", "pbin chunk", "jsonl chunk"])
def test_without_a_seed_each_run_draws_a_fresh_order(tmp_path, tool):
    """No seed: the order comes from the system's entropy, so two runs over 40 documents differ (the chance that
    they agree is 1 in 40!)."""
    documents = [[i + 1, 0] for i in range(40)]
    source = _pbin(tmp_path / "in.pbin", documents)
    (tmp_path / "in.jsonl").write_bytes(b"".join(f'{{"d": {i}}}\n'.encode() for i in range(40)))
    outputs = []
    for run in range(2):
        out = tmp_path / f"out{run}.{tool.split()[0]}"
        if tool == "pbin":
            shuffle_tokenized_data(source, out)
        elif tool == "jsonl":
            shuffle_jsonl_data(tmp_path / "in.jsonl", out)
        elif tool == "pbin chunk":
            create_shuffled_dataset_chunk([source], out, 0, 1)
        else:
            create_shuffled_jsonl_dataset_chunk([tmp_path / "in.jsonl"], out, 0, 1)
        outputs.append(out.read_bytes())
    assert outputs[0] != outputs[1]
