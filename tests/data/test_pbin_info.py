"""The info file beside each .pbin we write (which tokenizer made it), carried through merge, shuffle and
chunks, and what `modalities data inspect` shows: document lengths, samples at a sequence length."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from modalities.cli.main import main
from modalities.data.errors import DataError
from modalities.data.packing import pack_encoded_data
from modalities.data.pbin import PackedFile, PackedFileWriter, merge_packed_files
from modalities.data.pbin_info import info_path, read_info
from modalities.data.pbin_stats import length_histogram, length_stats, sample_counts
from modalities.data.raw_index import create_raw_index
from modalities.data.shuffling import create_shuffled_dataset_chunk, shuffle_tokenized_data
from tests.data.conftest import EOD, SAMPLE_TOKENIZER, TEXTS, write_jsonl


def _tokenizer_copy(tmp_path, name: str, change_vocabulary: bool = False):
    """A copy of the sample tokenizer folder; with change_vocabulary, the ids of two tokens swapped."""
    folder = tmp_path / name
    shutil.copytree(SAMPLE_TOKENIZER, folder)
    if change_vocabulary:
        data = json.loads((folder / "tokenizer.json").read_text())
        vocab = data["model"]["vocab"]
        a, b = (next(t for t, i in vocab.items() if i == wanted) for wanted in (300, 301))
        vocab[a], vocab[b] = 301, 300
        (folder / "tokenizer.json").write_text(json.dumps(data))
    return folder


def _pack(tmp_path, tokenizer_folder, name: str, texts=TEXTS):
    from modalities.data.tokenizers import PreTrainedHFTokenizer

    corpus = write_jsonl(tmp_path / f"{name}.jsonl", [{"text": t} for t in texts])
    create_raw_index(corpus)
    return pack_encoded_data(corpus, PreTrainedHFTokenizer(str(tokenizer_folder)), EOD).dst_path


def test_packing_records_the_tokenizer_beside_the_file(tmp_path):
    packed = _pack(tmp_path, SAMPLE_TOKENIZER, "c")
    assert info_path(packed) == tmp_path / "c.pbin.info.json"
    info = read_info(packed)
    tokenizer = info["tokenizer"]
    assert tokenizer["kind"] == "huggingface"
    assert tokenizer["source"] == str(SAMPLE_TOKENIZER)
    assert (tokenizer["vocab_size"], tokenizer["eod_token"], tokenizer["eod_id"]) == (2048, EOD, 0)
    assert (info["documents"], info["tokens"], info["token_width"]) == (
        len(TEXTS), PackedFile(packed).num_tokens, 2)
    assert info["source"]["documents"] == [0, len(TEXTS)] and info["source"]["jq_pattern"] == ".text"
    assert len(tokenizer["fingerprint"]) == 64


def test_the_fingerprint_follows_the_vocabulary_not_the_folder(tmp_path):
    same = read_info(_pack(tmp_path, _tokenizer_copy(tmp_path, "same"), "a"))["tokenizer"]["fingerprint"]
    original = read_info(_pack(tmp_path, SAMPLE_TOKENIZER, "b"))["tokenizer"]["fingerprint"]
    other = read_info(_pack(tmp_path, _tokenizer_copy(tmp_path, "other", True), "c"))["tokenizer"]["fingerprint"]
    weights = _tokenizer_copy(tmp_path, "with_weights")
    (weights / "model.safetensors").write_bytes(b"weights are not the tokenizer")
    with_weights = read_info(_pack(tmp_path, weights, "d"))["tokenizer"]["fingerprint"]
    assert same == original == with_weights
    assert other != original


def test_merge_and_shuffle_carry_the_tokenizer_and_refuse_to_mix_two(tmp_path):
    first = _pack(tmp_path, SAMPLE_TOKENIZER, "a", TEXTS[:20])
    second = _pack(tmp_path, _tokenizer_copy(tmp_path, "same"), "b", TEXTS[20:])
    other = _pack(tmp_path, _tokenizer_copy(tmp_path, "other", True), "c", TEXTS[:5])
    tokenizer = read_info(first)["tokenizer"]

    merged = tmp_path / "merged.pbin"
    merge_packed_files([first, second], merged)
    assert read_info(merged)["tokenizer"] == tokenizer
    assert (read_info(merged)["documents"], read_info(merged)["tokens"]) == (
        len(TEXTS), PackedFile(first).num_tokens + PackedFile(second).num_tokens)

    with pytest.raises(DataError, match=r"a\.pbin was packed with huggingface tokenizer .*sample/tokenizer .* and "
                                        r".*c\.pbin with huggingface tokenizer .*other .*ids mean different tokens"):
        merge_packed_files([first, other], tmp_path / "mixed.pbin")
    assert not (tmp_path / "mixed.pbin").exists()

    shuffled = tmp_path / "shuffled.pbin"
    shuffle_tokenized_data(merged, shuffled, seed=3)
    assert read_info(shuffled)["tokenizer"] == tokenizer and read_info(shuffled)["source"]["seed"] == 3
    chunk = tmp_path / "chunk.pbin"
    create_shuffled_dataset_chunk([first, second], chunk, 0, 2, 7)
    assert read_info(chunk)["tokenizer"] == tokenizer
    with pytest.raises(DataError, match="ids mean different tokens"):
        create_shuffled_dataset_chunk([first, other], tmp_path / "chunk2.pbin", 0, 2, 7)


def test_a_file_without_info_leaves_the_result_without_one(tmp_path):
    first = _pack(tmp_path, SAMPLE_TOKENIZER, "a", TEXTS[:20])
    bare = tmp_path / "bare.pbin"
    shutil.copy(first, bare)  # a file packed elsewhere: no info file
    merged = tmp_path / "merged.pbin"
    info_path(merged).write_text('{"format": "modalities.pbin.info/1", "tokenizer": {"fingerprint": "old"}}')
    merge_packed_files([first, bare], merged, overwrite=True)
    assert read_info(merged) is None  # the stale info of an earlier merge is gone, not left describing it


def test_an_unreadable_info_file_is_named(tmp_path):
    packed = _pack(tmp_path, SAMPLE_TOKENIZER, "a", TEXTS[:3])
    info_path(packed).write_text("{not json")
    with pytest.raises(DataError, match=r"a\.pbin\.info\.json: cannot read the info file .* pack the data again"):
        read_info(packed)
    info_path(packed).write_text('{"format": "something else"}')
    with pytest.raises(DataError, match="not a modalities.pbin.info/1 info file"):
        read_info(packed)


# --- document lengths and samples, worked out by hand -------------------------------------------------------------


def test_length_statistics_and_histogram():
    lengths = np.array([4, 1, 100, 3, 2])
    stats = length_stats(lengths)
    assert (stats.count, stats.min, stats.median, stats.mean, stats.p99, stats.max) == (5, 1, 3.0, 22.0, 100, 100)
    assert length_histogram(lengths) == [(1, 1, 1), (2, 3, 2), (4, 7, 1), (8, 15, 0), (16, 31, 0), (32, 63, 0),
                                         (64, 127, 1)]
    assert length_histogram(np.array([0, 0, 5])) == [(0, 0, 2), (1, 1, 0), (2, 3, 0), (4, 7, 1)]
    assert length_stats(np.array([], dtype=np.int64)) is None
    assert length_histogram(np.array([], dtype=np.int64)) == [] and length_histogram([]) == []
    assert length_histogram([3, 1]) == [(1, 1, 1), (2, 3, 1)]  # a plain list is taken too
    # nearest rank: of 200 lengths 1..200, the 198th
    assert length_stats(np.arange(1, 201)).p99 == 198


def test_sample_counts_at_a_sequence_length():
    lengths = [1, 2, 3, 4, 100]
    offsets = np.cumsum([0] + lengths[:-1])
    documents = np.stack([offsets, lengths], axis=1)
    counts = sample_counts(110, documents, 10)
    # continuous, reuse_last_target: windows of 11 every 10 tokens: (110 - 11) // 10 + 1 = 10; disjoint: 110 // 10
    assert (counts.continuous, counts.continuous_disjoint) == (10, 11)
    # megatron: documents 1+2+3+4 = 10 fit one block of 11; the 100-token one overflows it, so the block at 0 is
    # cut and, being longer than a block, the next starts at 11 with nothing accumulated: one sample.
    assert counts.megatron == 1
    counts = sample_counts(12, np.array([[0, 5], [5, 6], [11, 1]]), 4)  # blocks of 5
    # 5 fills a block exactly (start 0); 6 > 5 overflows an empty block: start 5, next at 10; 1 is left over
    assert counts.megatron == 2


def test_inspect_shows_the_tokenizer_lengths_and_samples(tmp_path, capsys):
    texts = ["a", "ab ab", "the old miller", "x " * 60]
    packed = _pack(tmp_path, SAMPLE_TOKENIZER, "c", texts)
    lengths = (PackedFile(packed).index[:, 1] // 2).tolist()
    capsys.readouterr()
    assert main(["data", "inspect", str(packed), "--sequence-length", "8", "--sequence-length", "16",
                 "--document", "2"]) == 0
    out = capsys.readouterr().out
    assert "tokenizer:   huggingface tokenizer " + str(SAMPLE_TOKENIZER) + " (2,048 ids, EOD '<|endoftext|>' = 0)" in out
    assert f"packed from: {tmp_path / 'c.jsonl'} (documents 0..4 of 4, jq .text)" in out
    ordered = sorted(lengths)
    assert (f"document length (tokens): min {ordered[0]}, median {(ordered[1] + ordered[2]) / 2:g}, "
            f"mean {sum(lengths) / 4:.1f}, p99 {ordered[3]}, max {ordered[3]}") in out
    total = sum(lengths)
    assert f"sequence_length      8: {(total - 9) // 8 + 1} / {total // 8};" in out
    assert "decoded:     'the old miller<|endoftext|>'" in out  # decoded with the recorded tokenizer


def test_inspect_a_file_packed_elsewhere_says_the_tokenizer_is_not_recorded(tmp_path, capsys):
    path = tmp_path / "x.pbin"
    writer = PackedFileWriter(path, 1)
    writer.write_tokens(np.array([1, 2, 0, 3, 0], dtype=np.uint8), [3, 2])
    writer.close()
    assert main(["data", "inspect", str(path), "--sequence-length", "2"]) == 0
    out = capsys.readouterr().out
    assert "tokenizer:   not recorded" in out
    assert "min 2, median 2.5, mean 2.5, p99 3, max 3" in out
    assert "sequence_length      2: 2 / 2; 1" in out
    assert main(["data", "inspect", str(path), "--sequence-length", "1"]) == 1
    assert "a sequence holds at least 2 tokens" in capsys.readouterr().err


def test_the_tokenizer_digest_reads_small_files_and_skips_weights_and_big_ones(tmp_path, monkeypatch):
    """A tokenizer folder's digest covers its small files (up to the limit, inclusive) and leaves out model weights
    and files over the limit (a folder may hold the model too): editing those does not make another tokenizer."""
    from modalities.data import pbin_info

    monkeypatch.setattr(pbin_info, "MAX_DIGESTED_FILE_BYTES", 8)
    folder = tmp_path / "tok"
    folder.mkdir()
    (folder / "vocab.txt").write_bytes(b"12345678")  # exactly at the limit: read
    (folder / "big.txt").write_bytes(b"123456789")  # one over: left out
    (folder / "model.safetensors").write_bytes(b"w")
    before = pbin_info.files_digest(folder)
    (folder / "big.txt").write_bytes(b"987654321")
    (folder / "model.safetensors").write_bytes(b"v")
    assert pbin_info.files_digest(folder) == before
    (folder / "vocab.txt").write_bytes(b"87654321")
    assert pbin_info.files_digest(folder) != before
    assert pbin_info.files_digest(folder, extra={"a": 1}) != pbin_info.files_digest(folder)  # settings count too
