"""The executor with small stand-in components: exact resume, rotation, NaN, kill-during-save, config errors."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.training.conftest import PLUGIN, REPO, TINY, read_results, subprocess_env, train_in_process


def test_resume_gives_bit_identical_losses(tmp_path):
    assert train_in_process(tmp_path, "full") == 0
    full = read_results(tmp_path / "full")
    assert sorted(full) == [1, 2, 3, 4, 5, 6]
    assert full[6] < full[1]

    assert train_in_process(tmp_path, "first", "--set", "settings.training_target.num_target_steps=3") == 0
    latest = tmp_path / "first" / "checkpoints" / "latest"
    assert os.readlink(latest) == "step_3"
    assert train_in_process(tmp_path, "resumed", "--resume", str(latest)) == 0
    first, resumed = read_results(tmp_path / "first"), read_results(tmp_path / "resumed")
    assert sorted(resumed) == [4, 5, 6]
    assert {**first, **resumed} == full  # bit-identical on CPU in fp32
    assert read_results(tmp_path / "resumed", "test") == {6: read_results(tmp_path / "full", "test")[6]}


def test_k_most_recent_rotation_deletes_older_checkpoints(tmp_path):
    assert train_in_process(
        tmp_path, "rot", "--set", "settings.intervals.checkpointing_interval_in_steps=1",
        "--set", "checkpoint_saving.config.checkpoint_saving_strategy.config.k=2",
    ) == 0
    folder = tmp_path / "rot" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["latest", "step_5", "step_6"]
    assert os.readlink(folder / "latest") == "step_6"


def test_every_k_steps_strategy_keeps_all_multiples(tmp_path):
    strategy = ("checkpoint_saving.config.checkpoint_saving_strategy="
                "{component_key: checkpoint_saving_strategy, variant_key: save_every_k_steps_checkpointing_strategy, config: {k: 2}}")
    assert train_in_process(tmp_path, "evk", "--set", "settings.intervals.checkpointing_interval_in_steps=1",
                            "--set", strategy) == 0
    assert sorted(p.name for p in (tmp_path / "evk" / "checkpoints").iterdir()) == ["latest", "step_2", "step_4", "step_6"]


def test_nan_loss_stops_and_names_step_and_last_checkpoint(tmp_path, capsys):
    code = train_in_process(tmp_path, "nan", "--set", "optimizer.config.lr=1e30",
                            "--set", "lr_scheduler.config.gamma=1.0",
                            "--set", "settings.intervals.checkpointing_interval_in_steps=1")
    err = capsys.readouterr().err
    assert code == 1
    assert "the training loss is" in err and "at step" in err
    step = int(err.split("at step ")[1].split(";")[0])
    assert step >= 2
    assert f"step_{step - 1}" in err  # the last good checkpoint
    assert not (tmp_path / "nan" / "checkpoints" / f"step_{step}").exists()


def test_kill_during_save_leaves_previous_checkpoint_loadable(tmp_path):
    cmd = [sys.executable, "-m", "modalities", "train", str(TINY), "--plugin", PLUGIN, "--experiments-root",
           str(tmp_path), "--experiment-id", "killed"]
    env = subprocess_env()
    checkpoints = tmp_path / "killed" / "checkpoints"
    # The test hook sleeps between writing the shards and renaming the folder: the kill lands mid-save.
    env_slow = subprocess_env(MODALITIES_TEST_SLEEP_MID_SAVE_S="60")
    first = subprocess.run(cmd + ["--set", "settings.training_target.num_target_steps=3"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    proc = subprocess.Popen(cmd + ["--resume", str(checkpoints / "latest")], cwd=REPO, env=env_slow,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 90
        while not (checkpoints / ".tmp-step_6" / "training_progress.json").exists():
            assert proc.poll() is None and time.time() < deadline, "the save never started"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert os.readlink(checkpoints / "latest") == "step_3"
    assert not (checkpoints / "step_6").exists()
    # the previous checkpoint still loads and training finishes from it
    assert train_in_process(tmp_path, "after_kill", "--resume", str(checkpoints / "latest")) == 0
    assert sorted(read_results(tmp_path / "after_kill")) == [4, 5, 6]



def test_cuda_without_gpu_is_a_clear_error(tmp_path, capsys):
    code = train_in_process(tmp_path, "cuda", "--set", "device_mesh.config.device_type=cuda")
    err = capsys.readouterr().err
    assert code == 1
    assert "no CUDA device" in err and "--set device_mesh.config.device_type=cpu" in err


def test_missing_top_level_key_is_named(tmp_path, capsys):
    config = tmp_path / "no_clipper.yaml"
    text = TINY.read_text()
    config.write_text(text[: text.index("gradient_clipper:")] + text[text.index("train_dataloader:"):])
    code = train_in_process(tmp_path, "missing", config=config)
    err = capsys.readouterr().err
    assert code == 1
    assert "'gradient_clipper'" in err
