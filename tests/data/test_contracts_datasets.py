"""The datasets' and data-reading number conversions' contracts: lengths and samples at the boundaries, worked
out by hand on token streams 0, 1, 2, ... (a sample's tokens then say where it starts)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modalities.data.datasets import (
    CombinedDataset,
    DummyDataset,
    MemMapDataset,
    PackedMemMapDatasetContinuous,
    PackedMemMapDatasetMegatron,
)
from modalities.data.errors import DataError
from modalities.data.number_conversion import (
    num_steps_from_raw_dataset_index,
    num_tokens_from_packed_mem_map_dataset_continuous,
)
from modalities.data.pbin import PackedFileWriter
from modalities.data.raw_index import create_raw_index
from modalities.data.tokenizers import TokenizerWrapper


def stream(path, num_tokens: int, document_lengths=None, width: int = 2):
    """A .pbin of tokens 0, 1, ..., num_tokens - 1 (one document unless lengths are given)."""
    writer = PackedFileWriter(path, width)
    writer.write_tokens(np.arange(num_tokens), document_lengths if document_lengths is not None else [num_tokens])
    writer.close()
    return path


# --- the continuous dataset -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "num_tokens, sequence_length, reuse, starts, block",
    [
        (5, 4, True, [0], 5),  # exactly one block of s + 1
        (8, 4, True, [0], 5),  # one short of the second
        (9, 4, True, [0, 4], 5),  # exactly two, sharing token 4
        (3, 2, True, [0], 3),  # the shortest sequence
        (7, 2, True, [0, 2, 4], 3),
        (4, 4, False, [0], 4),  # exactly one block of s
        (7, 4, False, [0], 4),
        (8, 4, False, [0, 4], 4),
        (2, 2, False, [0], 2),
    ],
)
def test_continuous_samples_worked_out_by_hand(tmp_path, num_tokens, sequence_length, reuse, starts, block):
    dataset = PackedMemMapDatasetContinuous(stream(tmp_path / "d.pbin", num_tokens), sequence_length, "ids",
                                            reuse_last_target=reuse)
    assert len(dataset) == len(starts)
    expected = [list(range(s, s + block)) for s in starts]
    assert [dataset[i]["ids"].tolist() for i in range(len(dataset))] == expected
    assert dataset[-1]["ids"].tolist() == expected[-1]  # the last, from the end
    assert dataset[-len(starts)]["ids"].tolist() == expected[0]  # the first, from the end
    assert dataset[0]["ids"].dtype == np.int64
    for outside in (len(starts), -len(starts) - 1):  # one past either end
        with pytest.raises(IndexError, match=f"sample {outside} is out of range for {len(starts)} samples"):
            dataset[outside]


@pytest.mark.parametrize("num_tokens, sequence_length, reuse",
                         [(4, 4, True), (0, 2, True), (3, 4, False), (1, 2, False)])
def test_continuous_data_short_of_one_sample_is_a_data_error(tmp_path, num_tokens, sequence_length, reuse):
    block = sequence_length + 1 if reuse else sequence_length
    with pytest.raises(DataError, match=f"d.pbin: {num_tokens} tokens are fewer than one sample of {block} tokens"):
        PackedMemMapDatasetContinuous(stream(tmp_path / "d.pbin", num_tokens), sequence_length, "ids",
                                      reuse_last_target=reuse)


@pytest.mark.parametrize("sequence_length", [1, 0, -1])
def test_a_sequence_shorter_than_two_is_refused(tmp_path, sequence_length):
    with pytest.raises(ValueError, match=f"sequence_length must be at least 2, got {sequence_length}"):
        PackedMemMapDatasetContinuous(stream(tmp_path / "d.pbin", 10), sequence_length, "ids")


def test_reuse_last_target_is_the_default(tmp_path):
    dataset = PackedMemMapDatasetContinuous(stream(tmp_path / "d.pbin", 9), 4, "ids")
    assert dataset.reuse_last_target is True and len(dataset) == 2 and dataset.sample_key == "ids"


# --- the Megatron dataset ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lengths, sequence_length, starts",
    [
        ([4], 3, [0]),  # one document filling one block of 4 exactly
        ([3], 3, []),  # one short of a block: nothing
        ([2, 2, 4], 3, [0, 4]),
        ([9], 3, [0]),  # longer than a block: the block at 0 is cut, the next would start at 4
        ([9, 3], 3, [0]),  # the block at 4 would need the document at 9 to fill it
        ([9, 4], 3, [0, 4]),
        ([3, 2, 2], 3, [0, 3]),
    ],
)
def test_megatron_samples_worked_out_by_hand(tmp_path, lengths, sequence_length, starts):
    dataset = PackedMemMapDatasetMegatron(stream(tmp_path / "d.pbin", sum(lengths), lengths), sequence_length, "ids")
    block = sequence_length + 1
    assert len(dataset) == len(starts)
    assert [dataset[i]["ids"].tolist() for i in range(len(dataset))] == [list(range(s, s + block)) for s in starts]
    if starts:
        assert dataset[-1]["ids"].tolist() == list(range(starts[-1], starts[-1] + block))
        assert dataset[0]["ids"].dtype == np.int64
    with pytest.raises(IndexError):
        dataset[len(starts)]


def test_a_megatron_sample_that_would_run_past_the_last_token_is_left_out(tmp_path):
    """Documents laid out in order never give such a start; an index whose documents overlap can. Rows (token
    offset, length) (0, 3), (6, 2), (0, 2) over 8 one-byte tokens at blocks of 4: 3 accumulate, the 2 at 6
    overflow (start 0; the next block starts at 6 with 2), the last 2 fill it (start 6): 6..9 runs past 8."""
    import pickle

    from modalities.data.pbin import encode_header

    path = tmp_path / "d.pbin"
    path.write_bytes(encode_header(8, 1) + bytes(range(8)) + pickle.dumps([(0, 3), (6, 2), (0, 2)]))
    dataset = PackedMemMapDatasetMegatron(path, 3, "ids")
    assert [dataset[i]["ids"].tolist() for i in range(len(dataset))] == [[0, 1, 2, 3]]


# --- several datasets one after another ------------------------------------------------------------------------------


class Numbers:
    def __init__(self, values):
        self.values = list(values)

    def __len__(self):
        return len(self.values)

    def __getitem__(self, i):
        return self.values[i]


@pytest.mark.parametrize(
    "index, value",
    [(0, "a0"), (1, "a1"), (2, "c0"), (4, "c2"), (-1, "c2"), (-3, "c0"), (-4, "a1"), (-5, "a0")],
)
def test_combined_indices_cross_the_boundaries_by_hand(index, value):
    # a: 2 samples, b: none, c: 3 samples -> a0 a1 c0 c1 c2
    combined = CombinedDataset([Numbers(["a0", "a1"]), Numbers([]), Numbers(["c0", "c1", "c2"])])
    assert len(combined) == 5
    assert combined[index] == value


@pytest.mark.parametrize("index", [5, -6])
def test_combined_indices_one_past_either_end_are_refused(index):
    combined = CombinedDataset([Numbers(["a0", "a1"]), Numbers(["c0", "c1", "c2"])])
    with pytest.raises(IndexError, match=f"sample {index} is out of range for 5 samples of the combined datasets"):
        combined[index]


def test_combined_of_one_and_of_none():
    assert [CombinedDataset([Numbers("xy")])[i] for i in range(2)] == ["x", "y"]
    assert len(CombinedDataset([Numbers([])])) == 0
    with pytest.raises(ValueError, match="needs at least one dataset"):
        CombinedDataset([])


# --- the JSONL dataset -----------------------------------------------------------------------------------------------


class Characters(TokenizerWrapper):
    """A tokenizer written here: one id per character, its code point."""

    def tokenize_batch(self, texts):
        return [[ord(c) for c in text] for text in texts]


def _jsonl(tmp_path, lines: list[str]):
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    create_raw_index(path, skip_malformed=False)
    return path


def test_memmap_documents_at_the_boundaries(tmp_path):
    path = _jsonl(tmp_path, [json.dumps({"text": t, "n": {"t": t.upper()}}) for t in ["ab", "", "xyz"]])
    dataset = MemMapDataset(path, Characters(), "ids")
    assert len(dataset) == 3
    assert [dataset[i]["ids"] for i in (0, 1, 2, -1, -3)] == [[97, 98], [], [120, 121, 122], [120, 121, 122], [97, 98]]
    for outside in (3, -4):
        with pytest.raises(IndexError, match=f"document {outside} is out of range for 3 documents"):
            dataset[outside]
    nested = MemMapDataset(path, Characters(), "ids", index_path=path.with_suffix(".idx"), jq_pattern=".n.t")
    assert nested[2]["ids"] == [88, 89, 90]
    # as a loader worker gets it: pickled after use (its open file stays behind), it reads on its own
    import pickle

    copy = pickle.loads(pickle.dumps(dataset))
    assert copy[0]["ids"] == [97, 98] and dataset[2]["ids"] == [120, 121, 122]


@pytest.mark.parametrize(
    "line, message",
    [
        (json.dumps({"other": "x"}), r"document 1 at byte 18: \"no field 'text' at the top level\""),
        (json.dumps({"text": 5}), "document 1: the jq pattern selects a value of type int, not a string"),
        (json.dumps({"text": None}), "document 1: the jq pattern selects a value of type NoneType"),
    ],
)
def test_memmap_documents_that_give_no_text_are_named(tmp_path, line, message):
    path = _jsonl(tmp_path, [json.dumps({"text": "first"}), line])
    dataset = MemMapDataset(path, Characters(), "ids")
    assert dataset[0]["ids"] == [ord(c) for c in "first"]
    with pytest.raises(DataError, match=f"c.jsonl: {message}"):
        dataset[1]


def test_memmap_a_line_broken_after_indexing_is_named(tmp_path):
    path = _jsonl(tmp_path, [json.dumps({"text": "ab"}), json.dumps({"text": "cd"})])
    path.write_text(json.dumps({"text": "ab"}) + '\n{"text": "cd"]\n', encoding="utf-8")  # same length, broken
    with pytest.raises(DataError, match="c.jsonl: document 1 at byte 15: "):
        MemMapDataset(path, Characters(), "ids")[1]


# --- the dummy dataset ------------------------------------------------------------------------------------------------


class Definition:
    def __init__(self, key, shape, kind):
        self.sample_key, self.sample_shape, self.sample_type = key, shape, kind


def test_dummy_samples_have_the_configured_shapes_and_kinds():
    dataset = DummyDataset(3, [Definition("x", [2, 3], "float"), {"sample_key": "y", "sample_shape": [4],
                                                                   "sample_type": "int"}], seed=5)
    assert len(dataset) == 3
    sample = dataset[2]  # the last
    assert (sample["x"].shape, sample["x"].dtype, sample["y"].shape, sample["y"].dtype) == (
        (2, 3), np.float64, (4,), np.int64)
    assert all(0 <= v < 512 for v in sample["y"].tolist())
    assert np.array_equal(dataset[2]["x"], sample["x"]) and np.array_equal(dataset[2]["y"], sample["y"])
    assert not np.array_equal(dataset[1]["x"], sample["x"])  # another index, another sample
    other_seed = DummyDataset(3, [Definition("x", [2, 3], "float")], seed=6)
    assert not np.array_equal(other_seed[2]["x"], sample["x"])
    unseeded = DummyDataset(1, [Definition("x", [64], "float")])
    assert not np.array_equal(unseeded[0]["x"], unseeded[0]["x"])  # no seed: fresh draws


def test_dummy_integers_cover_0_to_511():
    values = DummyDataset(1, [Definition("ids", [4096], "int")], seed=3)[0]["ids"]
    assert (values.min(), values.max()) == (0, 511)  # 4096 draws of 512 values: both ends are drawn


@pytest.mark.parametrize("index", [3, -1])
def test_dummy_indices_outside_the_samples_are_refused(index):
    with pytest.raises(IndexError, match=f"sample {index} is out of range for 3 dummy samples"):
        DummyDataset(3, [Definition("x", [1], "int")], seed=0)[index]


# --- number conversions that read a file ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "num_tokens, sequence_length, reuse, dp, micro, accumulation, expected",
    [
        # 101 tokens, s = 10, reuse: 10 samples; one step is 2 x 1 x 1 samples: 5 steps x 2 samples x 10 tokens
        (101, 10, True, 2, 1, 1, 100),
        (100, 10, True, 2, 1, 1, 80),  # one token short: 9 samples, 4 steps
        (100, 10, False, 2, 1, 1, 100),  # disjoint blocks: 10 samples
        (101, 10, True, 2, 5, 1, 100),  # exactly one step of 10 samples
        (101, 10, True, 11, 1, 1, 0),  # one step needs 11: none fits
        (101, 10, True, 1, 3, 3, 90),  # steps of 9 samples: one
        (11, 10, True, 1, 1, 1, 10),
    ],
)
def test_tokens_of_whole_steps_worked_out_by_hand(tmp_path, num_tokens, sequence_length, reuse, dp, micro,
                                                  accumulation, expected):
    path = stream(tmp_path / "d.pbin", num_tokens)
    assert num_tokens_from_packed_mem_map_dataset_continuous(path, sequence_length, dp, micro, accumulation,
                                                             reuse_last_target=reuse) == expected
    if reuse:  # reuse_last_target is the default, as in the dataset
        assert num_tokens_from_packed_mem_map_dataset_continuous(path, sequence_length, dp, micro,
                                                                 accumulation) == expected


@pytest.mark.parametrize(
    "documents, ranks, micro, accumulation, steps",
    [(12, 2, 3, 2, 1), (12, 2, 3, 1, 2), (11, 2, 3, 1, 1), (5, 2, 3, 1, 0), (6, 1, 1, 6, 1), (1, 1, 1, 1, 1)],
)
def test_steps_of_a_raw_index_worked_out_by_hand(tmp_path, documents, ranks, micro, accumulation, steps):
    path = _jsonl(tmp_path, [json.dumps({"text": str(i)}) for i in range(documents)])
    assert num_steps_from_raw_dataset_index(path.with_suffix(".idx"), ranks, micro, accumulation) == steps
