"""Datasets and the number conversions that read data files."""

import numpy as np
import pytest

from modalities.data.datasets import DummyDataset, MemMapDataset, PackedMemMapDatasetContinuous
from modalities.data.errors import DataError
from modalities.data.number_conversion import (
    num_steps_from_raw_dataset_index,
    num_tokens_from_packed_mem_map_dataset_continuous,
)
from modalities.data.pbin import PackedFileWriter
from modalities.data.raw_index import create_raw_index
from tests.data.conftest import TEXTS


def _pbin(path, tokens, width=2):
    writer = PackedFileWriter(path, width)
    writer.write_tokens(np.array(tokens), [len(tokens)])
    writer.close()
    return path


def test_continuous_samples_overlap_by_one(tmp_path):
    stream = list(range(100, 123))  # 23 tokens
    ds = PackedMemMapDatasetContinuous(_pbin(tmp_path / "d.pbin", stream), sequence_length=4, sample_key="input_ids")
    # samples of 5 tokens starting every 4 tokens: (23 - 1) // 4 = 5
    assert len(ds) == 5
    assert [ds[i]["input_ids"].tolist() for i in range(len(ds))] == [stream[4 * i : 4 * i + 5] for i in range(5)]
    assert ds[0]["input_ids"].dtype == np.int64
    # every token except the first is a target exactly once
    targets = [t for i in range(len(ds)) for t in ds[i]["input_ids"][1:].tolist()]
    assert targets == stream[1:21]
    with pytest.raises(IndexError, match="sample 5 is out of range for 5 samples"):
        ds[5]


def test_continuous_without_reuse_cuts_disjoint_windows_of_sequence_length(tmp_path):
    # The reference's windows: exactly sequence_length tokens each, no overlap; 23 // 4 = 5 samples.
    stream = list(range(23))
    ds = PackedMemMapDatasetContinuous(
        _pbin(tmp_path / "d.pbin", stream, width=1), sequence_length=4, sample_key="x", reuse_last_target=False
    )
    assert len(ds) == 5
    assert [ds[i]["x"].tolist() for i in range(5)] == [stream[4 * i : 4 * i + 4] for i in range(5)]
    # the reference's own example: 20 tokens, sequence_length 2 -> 10 samples
    ds = PackedMemMapDatasetContinuous(
        _pbin(tmp_path / "e.pbin", list(range(20))), sequence_length=2, sample_key="x", reuse_last_target=False
    )
    assert len(ds) == 10 and ds[9]["x"].tolist() == [18, 19]


def test_continuous_too_short_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="d.pbin: 3 tokens are fewer than one sample"):
        PackedMemMapDatasetContinuous(_pbin(tmp_path / "d.pbin", [1, 2, 3]), sequence_length=4, sample_key="x")


def test_mem_map_dataset_tokenizes_documents(corpus, hf_tokenizer):
    create_raw_index(corpus)
    ds = MemMapDataset(corpus, hf_tokenizer, sample_key="input_ids")
    assert len(ds) == len(TEXTS)
    assert ds[1]["input_ids"] == hf_tokenizer.tokenize(TEXTS[1])
    nested = MemMapDataset(corpus, hf_tokenizer, sample_key="ids", jq_pattern=".meta.body")
    assert nested[0]["ids"] == hf_tokenizer.tokenize(TEXTS[0].upper())


def test_dummy_dataset_shapes_and_seed():
    definition = [
        {"sample_key": "x", "sample_shape": (3, 2), "sample_type": "float"},
        {"sample_key": "ids", "sample_shape": (5,), "sample_type": "int"},
    ]
    ds = DummyDataset(num_samples=4, sample_definition=definition, seed=1)
    assert len(ds) == 4
    sample = ds[2]
    assert sample["x"].shape == (3, 2) and sample["x"].dtype == np.float64
    assert sample["ids"].shape == (5,) and 0 <= sample["ids"].min() and sample["ids"].max() < 512
    assert np.array_equal(ds[2]["x"], sample["x"]) and not np.array_equal(ds[3]["x"], sample["x"])


def test_num_tokens_from_packed_dataset(tmp_path):
    path = _pbin(tmp_path / "d.pbin", list(range(1001)))
    # 1000 // 10 = 100 samples of 10 inputs; steps = 100 // 2 ranks // 3 micro // 2 accum = 8
    assert num_tokens_from_packed_mem_map_dataset_continuous(path, 10, 2, 3, 2) == 8 * 2 * 3 * 2 * 10
    ds = PackedMemMapDatasetContinuous(path, sequence_length=10, sample_key="x")
    assert len(ds) == 100


def test_num_steps_from_raw_index(corpus):
    result = create_raw_index(corpus)
    assert num_steps_from_raw_dataset_index(result.index_path, 2, 4, 1) == len(TEXTS) // 2 // 4


def _pbin_with_documents(path, documents, width=4):
    writer = PackedFileWriter(path, width)
    writer.write_tokens(np.concatenate([np.array(d) for d in documents]), [len(d) for d in documents])
    writer.close()
    return path


@pytest.mark.parametrize(
    "sequence_length, expected_starts",
    # the reference's test data: 20 tokens in documents of 6, 10, 3 and 1 tokens; the counts are the reference's
    # (block_size 2, 3, 10, 6, 20, 25 -> 3, 3, 2, 2, 1, 0); starts worked out by hand from the packing rule
    [(1, [0, 2, 4]), (2, [0, 3, 6]), (9, [0, 6]), (5, [0, 6]), (19, [0]), (24, [])],
)
def test_megatron_dataset_cuts_the_reference_number_of_samples(tmp_path, sequence_length, expected_starts):
    from modalities.data.datasets import PackedMemMapDatasetMegatron

    stream = list(range(20))
    documents = [stream[0:6], stream[6:16], stream[16:19], stream[19:20]]
    path = _pbin_with_documents(tmp_path / "d.pbin", documents)
    ds = PackedMemMapDatasetMegatron(path, sequence_length=sequence_length, sample_key="ids")
    block = sequence_length + 1
    assert len(ds) == len(expected_starts)
    assert [ds[i]["ids"].tolist() for i in range(len(ds))] == [stream[s : s + block] for s in expected_starts]


def test_megatron_sample_count_follows_the_reference_for_a_one_token_block():
    from modalities.data.datasets import megatron_sample_starts

    # block_size 1 on documents of 6, 10, 3, 1 tokens: four samples in the reference
    assert len(megatron_sample_starts(np.array([[0, 6], [6, 10], [16, 3], [19, 1]]), 1)) == 4


def test_combined_dataset_reads_its_datasets_one_after_the_other(tmp_path):
    from modalities.data.datasets import CombinedDataset

    a = PackedMemMapDatasetContinuous(_pbin(tmp_path / "a.pbin", list(range(10))), sequence_length=2, sample_key="x")
    b = PackedMemMapDatasetContinuous(_pbin(tmp_path / "b.pbin", list(range(100, 107))), sequence_length=3, sample_key="x")
    combined = CombinedDataset([a, b])
    assert len(combined) == len(a) + len(b) == 4 + 2
    assert [combined[i]["x"].tolist() for i in range(6)] == [a[i]["x"].tolist() for i in range(4)] + [
        [100, 101, 102, 103],
        [103, 104, 105, 106],
    ]
    assert combined[-1]["x"].tolist() == [103, 104, 105, 106]
    with pytest.raises(IndexError, match="out of range for 6 samples"):
        combined[6]
