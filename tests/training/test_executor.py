"""The executor with small stand-in components: exact resume, rotation, NaN, kill-during-save, config errors."""

import json
import os
import signal
import subprocess
import sys
import time

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
    assert sorted(p.name for p in folder.iterdir()) == ["last_checkpoint_info.json", "latest", "step_5", "step_6"]
    info = json.loads((folder / "last_checkpoint_info.json").read_text())  # what a warm start reads
    assert info == {"checkpoint_folder_path": str((folder / "step_6").resolve())}
    assert os.readlink(folder / "latest") == "step_6"


def test_every_k_steps_strategy_keeps_all_multiples(tmp_path):
    strategy = ("checkpoint_saving.config.checkpoint_saving_strategy="
                "{component_key: checkpoint_saving_strategy, variant_key: save_every_k_steps_checkpointing_strategy, config: {k: 2}}")
    assert train_in_process(tmp_path, "evk", "--set", "settings.intervals.checkpointing_interval_in_steps=1",
                            "--set", strategy) == 0
    assert sorted(p.name for p in (tmp_path / "evk" / "checkpoints").iterdir()) == [
        "last_checkpoint_info.json", "latest", "step_2", "step_4", "step_6"
    ]


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


class _Output:
    """The merged output of a process, read by a thread, so a test can wait for a line."""

    def __init__(self, proc: subprocess.Popen):
        import threading

        self.proc, self.lines = proc, []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 240) -> None:
        deadline = time.time() + timeout
        while not any(text in line for line in self.lines):
            assert self.proc.poll() is None, "".join(self.lines)[-3000:]
            assert time.time() < deadline, f"no {text!r} in: " + "".join(self.lines)[-3000:]
            time.sleep(0.05)

    def finish(self, timeout: float = 240) -> str:
        self.proc.wait(timeout=timeout)
        self._thread.join(timeout=10)
        return "".join(self.lines)


def _signal_during_save_of_step_6(tmp_path, experiment_id: str, signals: list[signal.Signals]):
    """Train to step 3 (saved), resume, and send `signals` while step 6 is being saved (each after the process
    reported the one before); returns the checkpoints folder and the process's exit code and output."""
    cmd = [sys.executable, "-m", "modalities", "train", str(TINY), "--plugin", PLUGIN, "--experiments-root",
           str(tmp_path), "--experiment-id", experiment_id]
    checkpoints = tmp_path / experiment_id / "checkpoints"
    first = subprocess.run(cmd + ["--set", "settings.training_target.num_target_steps=3"], cwd=REPO,
                           env=subprocess_env(), capture_output=True, text=True, timeout=120, check=False)
    assert first.returncode == 0, first.stderr
    # The test hook sleeps between writing the shards and renaming the folder: the signal lands mid-save.
    proc = subprocess.Popen(cmd + ["--resume", str(checkpoints / "latest")], cwd=REPO,
                            env=subprocess_env(MODALITIES_TEST_SLEEP_MID_SAVE_S="60"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = _Output(proc)
    try:
        output.wait_for("sleeping 60")
        for i, sig in enumerate(signals):
            if i:
                # A repeat within 2 s counts as the same request (it arrives twice under torchrun); later, it
                # stops at once.
                output.wait_for(f"{signals[0].name} received")
                time.sleep(2.5)
            proc.send_signal(sig)
        text = output.finish(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    return checkpoints, proc.returncode, text


def test_kill_during_save_leaves_previous_checkpoint_loadable(tmp_path):
    checkpoints, _, _ = _signal_during_save_of_step_6(tmp_path, "killed", [signal.SIGKILL])
    assert os.readlink(checkpoints / "latest") == "step_3"
    assert not (checkpoints / "step_6").exists()
    # the previous checkpoint still loads and training finishes from it
    assert train_in_process(tmp_path, "after_kill", "--resume", str(checkpoints / "latest")) == 0
    assert sorted(read_results(tmp_path / "after_kill")) == [4, 5, 6]


def test_ctrl_c_twice_during_save_leaves_nothing_half_written(tmp_path):
    checkpoints, code, output = _signal_during_save_of_step_6(tmp_path, "interrupted", [signal.SIGINT] * 2)
    assert code == 130, output[-2000:]
    assert "modalities: interrupted" in output
    # the temporary folder is gone, no step_6 appeared, `latest` still names the last complete checkpoint
    assert sorted(p.name for p in checkpoints.iterdir()) == ["last_checkpoint_info.json", "latest", "step_3"]
    assert os.readlink(checkpoints / "latest") == "step_3"


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


def test_a_fresh_run_refuses_an_experiment_folder_that_holds_a_run(tmp_path, capsys):
    steps = ("--set", "settings.training_target.num_target_steps=2")
    assert train_in_process(tmp_path, "taken", *steps) == 0
    results = (tmp_path / "taken" / "results.jsonl").read_text()
    assert train_in_process(tmp_path, "taken", *steps) == 1
    assert "already has a run" in capsys.readouterr().err
    assert (tmp_path / "taken" / "results.jsonl").read_text() == results  # nothing appended or lost


def test_resume_restores_the_random_state_that_dropout_draws_from(tmp_path):
    """With dropout, every step draws masks from torch's RNG: a resumed run equals an uninterrupted one only if
    the checkpoint's RNG states are restored (tests above train without dropout)."""
    quickstart = REPO / "configs" / "quickstart.yaml"
    steps = ["--set", "model_raw.config.dropout=0.3", "--set", "settings.intervals.training_log_interval_in_steps=1",
             "--set", "settings.intervals.checkpointing_interval_in_steps=2",
             "--set", "settings.intervals.evaluation_interval_in_steps=100"]
    assert train_in_process(tmp_path, "full", *steps, "--set", "settings.training_target.num_target_steps=4",
                            config=quickstart) == 0
    assert train_in_process(tmp_path, "resumed", *steps, "--set", "settings.training_target.num_target_steps=4",
                            "--resume", str(tmp_path / "full" / "checkpoints" / "step_2"), config=quickstart) == 0
    full, resumed = read_results(tmp_path / "full"), read_results(tmp_path / "resumed")
    assert sorted(resumed) == [3, 4]
    assert {step: full[step] for step in (3, 4)} == resumed  # bit for bit, masks included
    # and the masks matter: the same steps without dropout give other losses
    assert train_in_process(tmp_path, "plain", *steps[2:], "--set", "settings.training_target.num_target_steps=4",
                            "--set", "model_raw.config.dropout=0.0", config=quickstart) == 0
    assert read_results(tmp_path / "plain")[3] != full[3]
