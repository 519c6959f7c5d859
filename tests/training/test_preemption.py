"""Runs the way clusters run them: a stop signal finishes the step, saves it and exits 75; `--resume auto`
continues to the same losses as an uninterrupted run; a changed target changes the schedule instead of crashing;
an experiment folder belongs to one run at a time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from modalities.training.signals import EXIT_STOPPED
from tests.training.conftest import PLUGIN, REPO, TINY, read_results, subprocess_env, torchrun_cmd, train_in_process
from tests.training.test_executor import _Output

pytestmark = pytest.mark.slow  # multi-process runs: scheduled first (tests/conftest.py)

STEPS_8 = ("--set", "settings.training_target.num_target_steps=8")
ONECYCLE = ("--set", "lr_scheduler={component_key: scheduler, variant_key: onecycle_lr, config: {optimizer: "
            "{instance_key: optimizer, pass_type: BY_REFERENCE}, max_lr: 0.02, total_steps: "
            "'${settings.training_target.num_target_steps}'}}")


def _train_cmd(tmp_path, experiment_id, *extra):
    return [sys.executable, "-m", "modalities", "train", str(TINY), "--plugin", PLUGIN, "--experiments-root",
            str(tmp_path), "--experiment-id", experiment_id, *extra]


def _events(folder) -> list[dict]:
    lines = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    return [line for line in lines if "event" in line]


def _stop_at_step(cmd, step: int, sig: signal.Signals, env=None) -> tuple[int, str]:
    """Run cmd, wait until the test hook reports step `step` done, send `sig`; return exit code and output."""
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=subprocess_env(MODALITIES_TEST_WAIT_FOR_SIGNAL_AT_STEP=str(step), **(env or {})))
    output = _Output(proc)
    try:
        output.wait_for(f"waiting for a signal after step {step}")
        proc.send_signal(sig)
        text = output.finish()
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, text


# session scope: under xdist's worksteal a worker may run a module's tests in several stretches, between
# which a module-scoped run would be thrown away and trained again
@pytest.fixture(scope="session")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("full")
    assert train_in_process(root, "full", *STEPS_8) == 0
    return read_results(root / "full")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT])
def test_a_stop_signal_saves_the_step_and_resume_auto_continues_exactly(tmp_path, uninterrupted, sig):
    cmd = _train_cmd(tmp_path, "job", *STEPS_8)
    code, output = _stop_at_step(cmd, 4, sig)
    # The signal came after step 4; step 5 was under way everywhere it could be, so it is finished and saved.
    assert code == EXIT_STOPPED, output[-3000:]
    checkpoints = tmp_path / "job" / "checkpoints"
    assert f"{sig.name} received; finishing this step and saving a checkpoint" in output
    assert f"stopped by {sig.name} after step 5; saved checkpoint {checkpoints / 'step_5'}" in output
    assert "--resume auto" in output and "Traceback" not in output
    assert os.readlink(checkpoints / "latest") == "step_5"
    assert sorted(read_results(tmp_path / "job")) == [1, 2, 3, 4, 5]

    again = subprocess.run(cmd + ["--resume", "auto"], cwd=REPO, env=subprocess_env(), capture_output=True,
                           text=True, timeout=240, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"--resume auto: resuming from {checkpoints / 'latest'}" in again.stdout
    assert read_results(tmp_path / "job") == uninterrupted  # one folder, the same losses bit for bit
    assert [(e["event"], e["num_train_steps_done"]) for e in _events(tmp_path / "job")] == [("resume", 5)]


def test_resume_auto_without_a_checkpoint_starts_fresh_and_needs_an_experiment_id(tmp_path, capsys, uninterrupted):
    assert train_in_process(tmp_path, "new", *STEPS_8, "--resume", "auto") == 0
    assert "no complete checkpoint of this experiment yet; starting from the beginning" in capsys.readouterr().out
    assert read_results(tmp_path / "new") == uninterrupted
    assert _events(tmp_path / "new") == []

    from modalities.cli.main import main

    assert main(["train", str(TINY), "--plugin", PLUGIN, "--resume", "auto"]) == 1
    assert "--resume auto needs a fixed experiment id" in capsys.readouterr().err


def test_resume_without_an_experiment_id_continues_in_the_checkpoints_folder(tmp_path, uninterrupted):
    cmd = _train_cmd(tmp_path, "origin", *STEPS_8)
    assert _stop_at_step(cmd, 2, signal.SIGTERM)[0] == EXIT_STOPPED
    latest = tmp_path / "origin" / "checkpoints" / "latest"
    resume = [sys.executable, "-m", "modalities", "train", str(TINY), "--plugin", PLUGIN, "--experiments-root",
              str(tmp_path), *STEPS_8, "--resume", str(latest)]
    result = subprocess.run(resume, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["origin"]  # no second experiment folder
    assert read_results(tmp_path / "origin") == uninterrupted


def _lrs(folder) -> dict[int, float]:
    lines = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    return {r["num_train_steps_done"]: r["metrics"]["lr mean"] for r in lines
            if r.get("dataloader_tag") == "train"}


@pytest.mark.parametrize(("first", "then"), [(4, 8), (8, 6)], ids=["raised", "lowered"])
def test_a_changed_target_reschedules_from_the_saved_step(tmp_path, first, then):
    # First run: checkpoint after step 4 (of a 4-step schedule, or stopped at 4 of 8).
    args = ("--set", f"settings.training_target.num_target_steps={first}",
            "--set", "settings.intervals.checkpointing_interval_in_steps=4", *ONECYCLE)
    if first == 4:
        assert train_in_process(tmp_path, "short", *args) == 0
    else:
        assert _stop_at_step(_train_cmd(tmp_path, "short", *args), 3, signal.SIGTERM)[0] == EXIT_STOPPED
    step_4 = tmp_path / "short" / "checkpoints" / "step_4"
    assert step_4.is_dir()

    # Continued with another target: the onecycle schedule is the one of a `then`-step run, from step 5 on
    # (saved scheduler state would crash when raised, "Tried to step 5 times", and keep the old one when lowered).
    target = ("--set", f"settings.training_target.num_target_steps={then}",
              "--set", "settings.intervals.checkpointing_interval_in_steps=4", *ONECYCLE)
    assert train_in_process(tmp_path, "longer", *target, "--resume", str(step_4)) == 0
    assert train_in_process(tmp_path, "reference", *target) == 0
    continued, reference = _lrs(tmp_path / "longer"), _lrs(tmp_path / "reference")
    assert sorted(continued) == list(range(5, then + 1))
    assert continued == {step: reference[step] for step in continued}
    assert len(set(continued.values())) == len(continued)  # a real schedule, not a constant


def test_a_target_already_reached_trains_nothing(tmp_path, capsys):
    assert train_in_process(tmp_path, "done", "--set", "settings.training_target.num_target_steps=3") == 0
    step_3 = tmp_path / "done" / "checkpoints" / "step_3"
    assert train_in_process(tmp_path, "done", "--set", "settings.training_target.num_target_steps=3",
                            "--resume", str(step_3)) == 0
    assert "is at step 3, and the target is 3 steps: nothing to train" in capsys.readouterr().out


def test_a_second_run_on_a_claimed_experiment_stops_before_building(tmp_path, capsys):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from modalities.training.experiment import ExperimentClaim; "
         f"claim = ExperimentClaim(Path({str(tmp_path / 'busy')!r})); print('held', flush=True); time.sleep(600)"],
        cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert train_in_process(tmp_path, "busy") == 1
        err = capsys.readouterr().err
        assert f"{tmp_path / 'busy'} is in use by another run (pid {holder.pid} on " in err
        assert not (tmp_path / "busy" / "results.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    # A holder that died (killed, crashed) holds nothing: the folder is free again.
    assert train_in_process(tmp_path, "busy", "--set", "settings.training_target.num_target_steps=1") == 0


def _modalities_torchrun(*args) -> list[str]:
    return [sys.executable, "-m", "modalities", "torchrun", "--standalone", "--nproc_per_node", "2", *args]


def test_torchrun_sigterm_mid_run_and_resume_auto_gives_the_uninterrupted_losses(tmp_path):
    tiny = ["train", str(TINY), "--plugin", PLUGIN, "--experiments-root", str(tmp_path), *STEPS_8]
    full = subprocess.run(torchrun_cmd(2, *tiny, "--experiment-id", "full"), cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300, check=False)
    assert full.returncode == 0, full.stderr[-3000:]

    # SIGTERM to the launcher, as scancel or a preemption sends it: it passes it on to both ranks, which finish
    # step 5 together, save it and exit; the launcher says so in one line.
    code, output = _stop_at_step(_modalities_torchrun(*tiny, "--experiment-id", "job"), 4, signal.SIGTERM)
    assert code == EXIT_STOPPED, output[-3000:]
    assert output.count("stopped by SIGTERM after step 5") == 1  # rank 0 says it
    assert "modalities torchrun: SIGTERM received and passed to the ranks" in output
    assert "Traceback" not in output
    assert os.readlink(tmp_path / "job" / "checkpoints" / "latest") == "step_5"

    again = subprocess.run(_modalities_torchrun(*tiny, "--experiment-id", "job", "--resume", "auto"), cwd=REPO,
                           env=subprocess_env(), capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    assert read_results(tmp_path / "job") == read_results(tmp_path / "full")


def test_torchrun_names_a_failed_rank(tmp_path):
    result = subprocess.run(
        _modalities_torchrun("train", str(TINY), "--plugin", PLUGIN, "--experiments-root", str(tmp_path),
                             "--experiment-id", "bad", "--set", "settings.training_target.num_target_steps=2",
                             "--resume", str(tmp_path / "nowhere")),
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 1
    # Whichever rank fails first is named with its code; torchrun stops the other one (code -15) at once.
    import re

    assert re.search(r"modalities torchrun: rank [01] \(local rank [01]\) exited with code 1: see its output above",
                     result.stderr), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
