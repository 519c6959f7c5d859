"""The real stack: quick-start config under torchrun on 2 CPU ranks, then convert to-torch and to-hf."""

import subprocess
import sys

from tests.training.conftest import REPO, read_results, subprocess_env

SMALL = [
    "--set", "settings.training_target.num_target_steps=8",
    "--set", "settings.step_profile.sequence_length=64",
    "--set", "settings.step_profile.local_train_micro_batch_size=4",
    "--set", "settings.intervals.checkpointing_interval_in_steps=4",
    "--set", "settings.intervals.evaluation_interval_in_steps=8",
    "--set", "settings.intervals.training_log_interval_in_steps=1",
    "--set", "evaluation_subscriber={component_key: results_subscriber, variant_key: dummy, config: {}}",
]


def test_quickstart_trains_on_two_cpu_ranks_and_converts(tmp_path, run_torchrun):
    result = run_torchrun(2, "train", "configs/quickstart.yaml", "--experiments-root", str(tmp_path),
                          "--experiment-id", "qs", *SMALL, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    losses = read_results(tmp_path / "qs")
    assert sorted(losses) == list(range(1, 9))
    assert losses[8] < losses[1] - 0.5

    latest = tmp_path / "qs" / "checkpoints" / "latest"
    env = subprocess_env()
    to_torch = subprocess.run([sys.executable, "-m", "modalities", "convert", "to-torch", str(latest), str(tmp_path / "m.pt")],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert to_torch.returncode == 0, to_torch.stderr[-2000:]
    to_hf = subprocess.run([sys.executable, "-m", "modalities", "convert", "to-hf", str(latest), str(tmp_path / "hf")],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert to_hf.returncode == 0, to_hf.stderr[-2000:]

    import torch
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    assert torch.equal(hf.transformer.wte.weight, state["transformer.wte.weight"])  # the trained weights
    out = hf.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=5, do_sample=False)
    assert out.shape == (1, 8)

    # Setting the Modalities-style restart skip as well as --resume would skip the consumed samples twice.
    resumed = run_torchrun(2, "train", "configs/quickstart.yaml", "--experiments-root", str(tmp_path),
                           "--experiment-id", "qs-twice", *SMALL, "--resume", str(tmp_path / "qs" / "checkpoints" / "step_4"),
                           "--set", "settings.training_progress.num_seen_samples=64", timeout=240)
    assert resumed.returncode == 1
    assert "step_4" in resumed.stderr
    assert "skip_num_global_samples back to 0" in resumed.stderr

    # On another number of ranks: one process with the same global batch (8 samples) continues the 2-rank run
    # from step 4, on the same samples in the same order, so its losses follow the uninterrupted run's.
    one = run_torchrun(1, "train", "configs/quickstart.yaml", "--experiments-root", str(tmp_path),
                       "--experiment-id", "qs-one", *SMALL,
                       "--set", "settings.step_profile.local_train_micro_batch_size=8",
                       "--resume", str(tmp_path / "qs" / "checkpoints" / "step_4"), timeout=240)
    assert one.returncode == 0, one.stderr[-3000:]
    assert "saved by 2 ranks and this run has 1" in one.stdout
    moved = read_results(tmp_path / "qs-one")
    assert sorted(moved) == [5, 6, 7, 8]
    for step, loss in moved.items():
        assert abs(loss - losses[step]) < 1e-4, (step, moved, losses)
