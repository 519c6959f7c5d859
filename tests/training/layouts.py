"""Training one config on several parallel layouts and comparing each with one process: the shared steps of
tests/training/test_tensor_parallel.py (tp.yaml) and test_context_parallel.py (cp.yaml)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.tolerances import approx_float32
from tests.training.conftest import REPO, run_in_process, subprocess_env, torchrun_cmd

# 4 steps, each logged, an evaluation at the end, checkpoints at steps 2 and 4
STEPS = [
    "--set", "settings.training_target.num_target_steps=4",
    "--set", "settings.intervals.training_log_interval_in_steps=1",
    "--set", "settings.intervals.evaluation_interval_in_steps=4",
    "--set", "settings.intervals.checkpointing_interval_in_steps=2",
]


def train_layout(run, config: Path, root: Path, nproc: int, experiment_id: str, *extra: str):
    """Train ``config`` on ``nproc`` ranks; (train records by step, evaluation losses)."""
    done = run(nproc, "train", str(config), "--experiments-root", str(root), "--experiment-id", experiment_id,
               *STEPS, *extra, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    records = [json.loads(line) for line in (root / experiment_id / "results.jsonl").read_text().splitlines()]
    train = {r["num_train_steps_done"]: r for r in records if r.get("dataloader_tag") == "train"}
    evaluation = [r["losses"]["loss avg"] for r in records if r.get("dataloader_tag") == "test"]
    return train, evaluation


def train_once(tmp_path_factory, config: Path, nproc: int, experiment_id: str, *extra: str):
    """A run that several tests of a module read (a module-scoped fixture trains it once): ``config`` on
    ``nproc`` ranks, one rank in this process; (its run, the folder it trained in)."""
    def run(nproc, *args, timeout=600):
        return subprocess.run(torchrun_cmd(nproc, *args), cwd=REPO, env=subprocess_env(), capture_output=True,
                              text=True, timeout=timeout, check=False)

    root = tmp_path_factory.mktemp(f"{config.stem}_{experiment_id}")
    return train_layout(run_in_process if nproc == 1 else run, config, root, nproc, experiment_id, *extra), root


def train_one_process(tmp_path_factory, config: Path, *extra: str):
    """The baseline of a module's layouts: ``config`` on one process; (its run, the folder it trained in)."""
    return train_once(tmp_path_factory, config, 1, "one", *extra)


def assert_same_run(a, b):
    """Two runs of the 4 steps: the same losses (float32 relative 1e-5), gradient norms, token counts and evaluation."""
    (train_a, eval_a), (train_b, eval_b) = a, b
    assert sorted(train_a) == sorted(train_b) == [1, 2, 3, 4]
    for step in train_a:
        for key in ("train loss avg", "train loss last"):
            assert train_a[step]["losses"][key] == approx_float32(train_b[step]["losses"][key]), (step, key)
        assert train_a[step]["metrics"]["grad norm last"] == pytest.approx(train_b[step]["metrics"]["grad norm last"],
                                                                           rel=1e-4)
        # ranks of one model replica (tp, cp, pp peers) read the same samples: tokens count the data-parallel
        # ranks only (by hand: a step is 8 samples of 128 tokens whatever the layout)
        assert train_a[step]["metrics"]["consumed tokens"] == train_b[step]["metrics"]["consumed tokens"] == 1024 * step
    assert eval_a == approx_float32(eval_b)


def assert_trains_as_one_process(layout, one_process, experiment_id: str):
    """A run of train_once (``experiment_id``) against the one-process baseline (assert_same_run), and what its
    step-2 checkpoint counts as seen: by hand, 2 steps of 8 samples of 128 tokens, whatever the layout."""
    (run, root), (baseline, _) = layout, one_process
    assert_same_run(run, baseline)
    progress = json.loads((root / experiment_id / "checkpoints" / "step_2" / "training_progress.json").read_text())
    assert (progress["num_seen_samples"], progress["global_num_seen_tokens"]) == (16, 2048)
