"""The reference's data commands under their own names and flags: same seed, same bytes as the reference."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compat.helpers import expected

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


def _modalities(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modalities", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_shuffles_match_the_reference_byte_for_byte(tmp_path):
    reference = expected("data_tools.json")
    run = _modalities("data", "shuffle_tokenized_data", "--input_data_path", str(SAMPLE / "corpus.pbin"),
                      "--output_data_path", "s.pbin", "--seed", "7", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert _sha(tmp_path / "s.pbin") == reference["shuffle_tokenized_data"]
    run = _modalities("data", "shuffle_jsonl_data", "--input_data_path", str(SAMPLE / "corpus.jsonl"),
                      "--output_data_path", "s.jsonl", "--seed", "7", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert _sha(tmp_path / "s.jsonl") == reference["shuffle_jsonl_data"]
    # an existing output is an error by default, skipped or overridden on request
    again = _modalities("data", "shuffle_jsonl_data", "--input_data_path", str(SAMPLE / "corpus.jsonl"),
                        "--output_data_path", "s.jsonl", "--seed", "8", cwd=tmp_path)
    assert again.returncode == 1 and "already exists" in again.stderr
    skipped = _modalities("data", "shuffle_jsonl_data", "--input_data_path", str(SAMPLE / "corpus.jsonl"),
                          "--output_data_path", "s.jsonl", "--seed", "8", "--file_existence_policy", "skip", cwd=tmp_path)
    assert skipped.returncode == 0 and _sha(tmp_path / "s.jsonl") == reference["shuffle_jsonl_data"]


@pytest.mark.parametrize("command, suffix", [("create_shuffled_dataset_chunk", "pbin"), ("create_shuffled_jsonl_chunk", "jsonl")])
def test_shuffled_chunks_match_the_reference_byte_for_byte(tmp_path, command, suffix):
    reference = expected("data_tools.json")[command]
    (tmp_path / "files.txt").write_text("corpus\n")
    sizes = []
    for chunk in range(3):
        out = tmp_path / f"c{chunk}.{suffix}"
        run = _modalities("data", command, "--input_file_list_path", "files.txt", "--input_data_root_path", str(SAMPLE),
                          "--output_chunk_file_path", out.name, "--chunk_id", str(chunk), "--num_chunks", "3",
                          "--global_seed", "5", cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        assert _sha(out) == reference[chunk], chunk
        sizes.append(int(run.stdout.split(" documents")[0].rsplit(" ", 1)[1]))
    assert sizes == [200, 200, 200]  # 600 documents in three equal chunks


def test_chunk_ranges_follow_the_reference_rule():
    from modalities.data.shuffling import chunk_range

    # 10 samples in 3 chunks: 4, 3, 3 (the larger chunks first)
    assert [chunk_range(3, 10, i) for i in range(3)] == [(0, 4), (4, 7), (7, 10)]
    assert [chunk_range(4, 2, i) for i in range(4)] == [(0, 1), (1, 2), (2, 2), (2, 2)]
