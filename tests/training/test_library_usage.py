"""The library API under torchrun: examples/library_usage (a custom collate fn registered at runtime), and
Main.run with the experiment id agreed before compiling (or refused when the ranks compiled different ones)."""

import json
import subprocess
import sys

import pytest

from tests.training.conftest import REPO, read_results, subprocess_env

pytestmark = pytest.mark.slow  # multi-process runs: scheduled first (tests/conftest.py)


def _torchrun_script(script, *args, timeout=900):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script), *args]
    return subprocess.run(
        cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def test_library_usage_example_trains_with_its_custom_collate_fn(tmp_path):
    result = _torchrun_script(
        REPO / "examples/library_usage/main.py", "--experiments-root", str(tmp_path), "--experiment-id", "lib"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Custom attribute: custom_value") == 2  # once per rank
    losses = read_results(tmp_path / "lib")
    assert sorted(losses) == [2, 4, 6, 8, 10]
    assert losses[10] < losses[2]
    checkpoints = tmp_path / "lib" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["last_checkpoint_info.json", "latest", "step_10", "step_5"]
    assert json.loads((checkpoints / "latest" / "training_progress.json").read_text())["num_seen_steps"] == 10

    # resumed from step 5 on the real data pipeline (sampler position, RNG states): the same losses, bit for bit
    example = REPO / "examples/library_usage/main.py"
    resumed = _torchrun_script(
        example,
        "--experiments-root",
        str(tmp_path),
        "--experiment-id",
        "lib_resumed",
        "--resume",
        str(checkpoints / "step_5"),
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    resumed_losses = read_results(tmp_path / "lib_resumed")
    assert sorted(resumed_losses) == [6, 8, 10]
    assert all(resumed_losses[step] == losses[step] for step in (6, 8, 10)), (resumed_losses, losses)


def test_main_run_agrees_on_the_default_experiment_id_before_compiling_and_resumes(tmp_path):
    script = REPO / "tests/training/library_script.py"
    first = _torchrun_script(script, str(tmp_path), "-", "3")
    assert first.returncode == 0, first.stderr[-3000:]
    # No id given: both ranks compiled with rank 0's timestamp, so there is one experiment folder.
    (folder,) = tmp_path.iterdir()
    step_3 = folder / "checkpoints" / "step_3"
    assert (step_3 / "rank_0.pt").is_file() and (step_3 / "rank_1.pt").is_file()
    assert sorted(read_results(folder)) == [1, 2, 3]

    resumed = _torchrun_script(script, str(tmp_path), "=resumed", "5", str(step_3))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert sorted(read_results(tmp_path / "resumed")) == [4, 5]


def test_main_run_refuses_ranks_that_compiled_different_experiment_ids(tmp_path):
    script = REPO / "tests/training/library_script.py"
    result = _torchrun_script(script, str(tmp_path), "mine", "3")
    assert result.returncode != 0
    assert "the ranks compiled the config with different experiment ids (mine-rank0, mine-rank1)" in result.stderr
    assert not any(tmp_path.iterdir())  # nothing claimed, built or written
