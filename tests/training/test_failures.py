"""An exception inside the training loop ends the run with a message naming the step and the part of it that
failed, and saves the step reached where the state is intact (training/failures.py): a resume from that
checkpoint gives the losses of an uninterrupted run, bit for bit. Failures are raised by the test hook
MODALITIES_TEST_FAIL_AT=STEP:PART[:RANK]."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import torch

from modalities.training.failures import FAIL_AT_ENV
from tests.training.conftest import REPO, TINY, free_port, read_results, subprocess_env, torchrun_cmd, train_in_process

EVERY_2 = ("--set", "settings.intervals.checkpointing_interval_in_steps=2")  # tiny.yaml: 6 steps, eval at 3 and 6


# session scope: under xdist's worksteal a worker may run a module's tests in several stretches, between
# which a module-scoped run would be thrown away and trained again
@pytest.fixture(scope="session")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("full")
    assert train_in_process(root, "full") == 0
    return read_results(root / "full")


def _fail(tmp_path, monkeypatch, capsys, spec: str) -> tuple[int, str]:
    monkeypatch.setenv(FAIL_AT_ENV, spec)
    code = train_in_process(tmp_path, "failing", *EVERY_2)
    monkeypatch.delenv(FAIL_AT_ENV)
    return code, capsys.readouterr().err


def _checkpoints(tmp_path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "failing" / "checkpoints").iterdir() if p.name.startswith("step_"))


@pytest.mark.parametrize(("spec", "saved", "part"), [
    ("4:forward", 3, "loading data, forward and backward"),  # before the update: the step before is saved
    ("3:scheduler", 3, "the learning-rate scheduler step"),  # after the update: the step is saved
    ("3:evaluation", 3, "logging, evaluation and subscribers after the step"),
])
def test_a_failure_where_the_state_is_intact_saves_the_step_reached(tmp_path, monkeypatch, capsys, uninterrupted,
                                                                     spec, saved, part):
    code, err = _fail(tmp_path, monkeypatch, capsys, spec)
    step = int(spec.split(":")[0])
    checkpoint = tmp_path / "failing" / "checkpoints" / f"step_{saved}"
    assert code == 1
    assert f"training failed in step {step}, in {part}: RuntimeError: [test hook] failing in" in err
    assert f"step {saved} is saved: {checkpoint}; once the cause is fixed, continue with --resume {checkpoint}" in err
    assert "Traceback" in err  # the cause, as Python tells it, before the message
    assert _checkpoints(tmp_path) == ["step_2", f"step_{saved}"]  # step 3 is off the interval: saved for the failure
    progress = json.loads((checkpoint / "training_progress.json").read_text())
    assert progress["num_seen_steps"] == saved and progress["train_batches_consumed"] == 2 * saved  # 2 per step

    assert train_in_process(tmp_path, "failing", "--resume", str(checkpoint)) == 0
    continued = read_results(tmp_path / "failing")  # a step that failed before its log line has none
    assert set(continued) >= {1, 2, 4, 5, 6}
    assert continued == {s: uninterrupted[s] for s in continued}  # bit for bit: the failed step repeated exactly


def test_a_failure_in_the_optimizer_step_saves_nothing_more(tmp_path, monkeypatch, capsys):
    code, err = _fail(tmp_path, monkeypatch, capsys, "4:optimizer")
    assert code == 1
    assert "training failed in step 4, in the optimizer step" in err
    last = tmp_path / "failing" / "checkpoints" / "step_2"
    assert ("nothing more is saved: the optimizer step had begun, so weights and optimizer state may be partly "
            f"updated; the last checkpoint is {last}") in err
    assert _checkpoints(tmp_path) == ["step_2"]


def test_a_failure_right_after_a_checkpoint_names_it(tmp_path, monkeypatch, capsys):
    code, err = _fail(tmp_path, monkeypatch, capsys, "3:forward")  # step 2 was saved at its interval
    assert code == 1
    assert f"step 2 is saved: {tmp_path / 'failing' / 'checkpoints' / 'step_2'}" in err
    assert _checkpoints(tmp_path) == ["step_2"]


@pytest.mark.slow
def test_two_ranks_failing_alike_save_the_step_before_together(tmp_path):
    done = subprocess.run(
        torchrun_cmd(2, "train", str(TINY), "--plugin", "tests.training.standins_plugin", "--experiments-root",
                     str(tmp_path), "--experiment-id", "both", *EVERY_2),
        cwd=REPO, env=subprocess_env(**{FAIL_AT_ENV: "4:forward"}), capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    checkpoint = tmp_path / "both" / "checkpoints" / "step_3"
    assert done.stderr.count(f"step 3 is saved: {checkpoint}") == 2  # each rank says so
    assert (checkpoint / "rank_0.pt").is_file() and (checkpoint / "rank_1.pt").is_file()
    assert json.loads((checkpoint / "training_progress.json").read_text())["num_seen_steps"] == 3


AGREEMENT_CASES = {"alike": {0: True, 1: True}, "other part": {0: False, 1: False},
                   "other step": {0: False, 1: False}, "alone": {0: False}}


def _agree(rank: int, port: int, results) -> None:
    """Every case in turn on the same 2 ranks, each agreement in a group of its own (failure_group); "alone"
    last, since only there a rank waits out the agreement's timeout."""
    import torch.distributed as dist

    from modalities.training.failures import AGREEMENT_TIMEOUT_ENV, FORWARD, OPTIMIZER, all_failed_alike, failure_group

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), **{AGREEMENT_TIMEOUT_ENV: "3"})
    dist.init_process_group("gloo", rank=rank, world_size=2)
    for case in AGREEMENT_CASES:
        group = failure_group()
        if case == "alike":
            results.put((case, rank, all_failed_alike(group, 4, FORWARD)))
        elif case == "other part":
            results.put((case, rank, all_failed_alike(group, 4, FORWARD if rank == 0 else OPTIMIZER)))
        elif case == "other step":
            results.put((case, rank, all_failed_alike(group, 4 + rank, FORWARD)))
        elif rank == 0:  # "alone": rank 1 never comes (it waits in a collective of the main group)
            results.put((case, rank, all_failed_alike(group, 4, FORWARD)))
        dist.barrier()  # in "alone", rank 1 waits here; rank 0 comes after its agreement timed out
    dist.destroy_process_group()


@pytest.fixture(scope="session")
def agreements():
    """What each rank answered in each case: one spawn of 2 ranks for all of them (each spawned process spends
    seconds importing torch)."""
    import torch.multiprocessing as mp

    context = mp.get_context("spawn")
    results = context.Queue()
    mp.start_processes(_agree, args=(free_port(), results), nprocs=2, start_method="spawn")
    got = {}
    for _ in range(sum(len(expected) for expected in AGREEMENT_CASES.values())):
        case, rank, answer = results.get(timeout=600)
        got.setdefault(case, {})[rank] = answer
    return got


@pytest.mark.slow
@pytest.mark.parametrize(("case", "expected"), list(AGREEMENT_CASES.items()))
def test_ranks_save_only_when_all_failed_in_the_same_step_and_part(agreements, case, expected):
    assert agreements[case] == expected


def test_the_hook_and_the_agreement_need_no_process_group():
    from modalities.training.failures import FORWARD, all_failed_alike, failure_group, test_hook_fail

    assert failure_group() is None and all_failed_alike(None, 3, FORWARD)
    test_hook_fail(3, "forward")  # not asked for: nothing
    assert torch.tensor(0).item() == 0
