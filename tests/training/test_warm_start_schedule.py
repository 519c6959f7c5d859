"""A warm start (app_state/dcp, the reference's mechanism) whose target is raised or lowered trains on with the
learning rates of a run of the new length, on 2 ranks, for OneCycleLR, CosineAnnealingLR and the linear warmup
+ cosine; a combination that cannot be honoured is refused when the config is compiled.

Before this, the warm start loaded the checkpoint's scheduler state over the config's: a raised target trained
to the end of the saved OneCycleLR and died in torch ("Tried to step 7 times. The specified number of total
steps is 6"), a lowered one kept the old, longer schedule. The expected rates are a fresh torch scheduler of the
new length stepped to the same step, and the linear warmup + cosine worked out by hand."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from torch.optim import lr_scheduler as torch_sched

from tests.training.conftest import REPO, subprocess_env

LR = 0.01  # tiny.yaml's optimizer


def _torch_lrs(make, length: int) -> dict[int, float]:
    """lr after each step s = 1..length (what the run logs at step s: the rate of the step after it)."""
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    scheduler = make(optimizer, length)
    lrs = {}
    for step in range(1, length + 1):
        optimizer.step()
        scheduler.step()
        lrs[step] = scheduler.get_last_lr()[0]
    return lrs


def _warmup_cosine_by_hand(length: int, warmup: int = 2, initial: float = 0.001, final: float = 0.0005):
    def lr(step):
        if step < warmup:
            return initial + (LR - initial) * step / warmup
        if step >= length:
            return final
        return final + (LR - final) * (1 + math.cos(math.pi * (step - warmup) / (length - warmup))) / 2

    return {step: lr(step) for step in range(1, length + 1)}


EXPECTED = {
    # the config's OneCycleLR defaults: pct_start 0.3, div_factor 25, final_div_factor 1e4, no momentum cycling
    "onecycle": lambda n: _torch_lrs(lambda o, n: torch_sched.OneCycleLR(o, max_lr=0.02, total_steps=n,
                                                                         cycle_momentum=False), n),
    "cosine": lambda n: _torch_lrs(lambda o, n: torch_sched.CosineAnnealingLR(o, T_max=n, eta_min=0.001), n),
    "linear_warmup_cosine": _warmup_cosine_by_hand,
}


def _logged_lrs(folder) -> dict[int, float]:
    lines = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    return {r["num_train_steps_done"]: r["metrics"]["lr mean"] for r in lines if r.get("dataloader_tag") == "train"}


# session scope: under xdist's worksteal a worker may run a module's tests in several stretches, between
# which a module-scoped run would be thrown away and trained again
@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """Every run of tests/training/warm_start_script.py, in one launch of 2 ranks."""
    root = tmp_path_factory.mktemp("warm")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(REPO / "tests" / "training" / "warm_start_script.py"), str(root)]
    done = subprocess.run(cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root, done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(EXPECTED))
@pytest.mark.parametrize("target", [9, 5], ids=["raised", "lowered"])
def test_a_warm_start_with_another_target_trains_on_with_the_rates_of_a_run_of_that_length(runs, kind, target):
    root, output = runs
    first, continued = _logged_lrs(root / f"{kind}-first"), _logged_lrs(root / f"{kind}-to-{target}")
    # float64 rates from the same formulas: equal but for the last bits
    assert first == pytest.approx(EXPECTED[kind](6), rel=1e-12)  # the schedule the checkpoint was saved with
    expected = EXPECTED[kind](target)
    assert sorted(continued) == list(range(4, target + 1))
    assert continued == pytest.approx({s: expected[s] for s in continued}, rel=1e-12)
    length = "T_max" if kind == "cosine" else "total_steps"
    assert f"lr_scheduler {length}: the checkpoint's is 6, the config's {target}" in output


@pytest.mark.slow
def test_a_warm_start_that_cannot_be_honoured_is_refused_before_training(runs):
    root, _ = runs
    (refused,) = json.loads((root / "refused.json").read_text())
    assert refused["path"] == "lr_scheduler.config.total_steps"
    assert "OneCycleLR's schedule is 6 steps long, and the run trains to step 9" in refused["message"]
    assert not (root / "refused").exists()  # refused before anything was claimed or built
