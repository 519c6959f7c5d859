"""The raw JSONL index: byte offsets and lengths, malformed lines, skipping, Modalities' pickle format."""

import json
import pickle

import pytest

from modalities.data.errors import DataError
from modalities.data.raw_index import create_raw_index, read_raw_index
from tests.data.conftest import write_jsonl


def test_offsets_and_lengths_are_bytes(corpus):
    result = create_raw_index(corpus)
    assert result.index_path == corpus.with_suffix(".idx")
    raw = corpus.read_bytes()
    index = pickle.loads(result.index_path.read_bytes())  # plain Modalities format: a list of tuples
    assert isinstance(index, list) and all(isinstance(e, tuple) for e in index)
    lines = raw.split(b"\n")[:-1]
    assert len(index) == len(lines) == result.num_documents
    for (offset, length), line in zip(index, lines):
        assert raw[offset : offset + length] == line
        json.loads(raw[offset : offset + length])
    assert read_raw_index(result.index_path, corpus).tolist() == [list(e) for e in index]


def test_malformed_line_names_its_line_number(tmp_path):
    path = write_jsonl(
        tmp_path / "bad.jsonl", [{"text": str(i)} for i in range(6)], raw_lines={3: '{"text": "unterminated'}
    )
    with pytest.raises(DataError, match=r"bad.jsonl:4: not a valid JSON line.*--skip-malformed"):
        create_raw_index(path)
    assert not path.with_suffix(".idx").exists()


def test_skip_malformed_reports_the_lines(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"text": str(i)} for i in range(6)], raw_lines={1: "not json", 4: ""})
    result = create_raw_index(path, skip_malformed=True)
    assert result.skipped_lines == [2, 5]
    assert result.num_documents == 4
    raw = path.read_bytes()
    texts = [json.loads(raw[o : o + n])["text"] for o, n in read_raw_index(result.index_path).tolist()]
    assert texts == ["0", "2", "3", "5"]


def test_existing_index_needs_overwrite(corpus):
    create_raw_index(corpus)
    with pytest.raises(DataError, match="already exists"):
        create_raw_index(corpus)
    create_raw_index(corpus, overwrite=True)


def test_index_of_another_file_is_detected(tmp_path, corpus):
    result = create_raw_index(corpus)
    small = write_jsonl(tmp_path / "small.jsonl", [{"text": "x"}])
    with pytest.raises(DataError, match="lies beyond the end of .*small.jsonl"):
        read_raw_index(result.index_path, small)
