"""tools/mutation.py keeps a drawing's first score: the record's table is read and extended, a recorded seed is
refused by --record, and a fresh seed is one no recorded drawing of the area used."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tool():
    if "mutation_tool" not in sys.modules:
        spec = importlib.util.spec_from_file_location("mutation_tool", REPO / "tools" / "mutation.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["mutation_tool"] = module  # its dataclass looks its module up there
        spec.loader.exec_module(module)
    return sys.modules["mutation_tool"]


RECORD = """# Testing

text before

<!-- first scores: tools/mutation.py --record adds a row per area here -->
| date | area | seed | max per file | killed | score | time | machine |
|---|---|---|---|---|---|---|---|
| 2026-12-01 | data | 101 | 3 | 45/51 | 88% | 30 min | 2 cores |
| 2026-12-02 | compiler | 7 | 8 | 30/32 | 94% | 10 min | 2 cores |

Seeds drawn before first scores were recorded: 0, 1, 4 (every area).

| 2026-11-01 | data | 55 | an unrelated table further down is not read as the record's own |
"""


def test_the_record_names_each_areas_drawings_and_the_seeds_drawn_before(tmp_path):
    tool = _tool()
    path = tmp_path / "testing.md"
    path.write_text(RECORD)
    drawings = tool.recorded_drawings(path)
    assert tool.first_scored(drawings, "data", 101) == "2026-12-01"
    assert tool.first_scored(drawings, "compiler", 101) is None  # another area: another drawing
    assert tool.first_scored(drawings, "compiler", 7) == "2026-12-02"
    assert tool.first_scored(drawings, "training", 4) == "before the record"  # for every area
    assert tool.first_scored(drawings, "data", 2) is None
    assert tool.first_scored(drawings, "data", 55) is None  # a row of another table
    assert tool.recorded_drawings(tmp_path / "none.md") == {}
    for _ in range(20):
        seed = tool.fresh_seed(drawings, ["data", "compiler"])
        assert tool.first_scored(drawings, "data", seed) is None and seed >= 1000


def test_first_scores_go_after_the_last_row_of_the_records_table(tmp_path):
    tool = _tool()
    path = tmp_path / "testing.md"
    path.write_text(RECORD)
    tool.record_first_scores(path, ["| 2026-12-04 | data | 102 | 3 | 40/50 | 80% | 20 min | 2 cores |"])
    lines = path.read_text().splitlines()
    at = lines.index("| 2026-12-02 | compiler | 7 | 8 | 30/32 | 94% | 10 min | 2 cores |")
    assert lines[at + 1] == "| 2026-12-04 | data | 102 | 3 | 40/50 | 80% | 20 min | 2 cores |"
    assert lines[at + 2] == ""  # the text after the table is left as it was
    assert path.read_text().endswith(RECORD.splitlines()[-1] + "\n")
    path.write_text("no table here\n")
    with pytest.raises(SystemExit, match="no line .* to record first scores under"):
        tool.record_first_scores(path, ["| x |"])


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "tools" / "mutation.py"), *args], capture_output=True,
                          text=True, timeout=300, check=False)


def test_record_refuses_a_drawing_already_scored_and_draws_fresh_seeds(tmp_path):
    path = tmp_path / "testing.md"
    path.write_text(RECORD)
    refused = _run("data", "--seed", "101", "--record", str(path), "--list")
    assert refused.returncode == 2
    assert "seed 101 was drawn before for data (first scored 2026-12-01)" in refused.stderr
    assert "draw afresh with --seed fresh" in refused.stderr
    assert _run("data", "--seed", "1", "--record", str(path), "--list").returncode == 2  # drawn before the rule
    fresh = _run("data", "--seed", "fresh", "--record", str(path), "--max-per-file", "1", "--list")
    assert fresh.returncode == 0 and fresh.stdout.startswith("fresh seed: ")
    assert _run("data", "--seed", "x", "--list").returncode == 2
    assert path.read_text() == RECORD  # listing records nothing


def test_the_repositorys_record_holds_the_seeds_drawn_before_the_rule():
    tool = _tool()
    drawings = tool.recorded_drawings(tool.RECORD)
    assert all(tool.first_scored(drawings, "data", seed) for seed in range(5))
