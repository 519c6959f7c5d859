"""The real stack: quick-start config under torchrun on 2 CPU ranks, then convert to-torch and to-hf."""

import re
import subprocess
import sys

import pytest

from tests.training.conftest import REPO, read_results, run_in_process, subprocess_env

pytestmark = pytest.mark.slow  # multi-process runs: scheduled first (tests/conftest.py)

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
    assert "DTensor random operators" not in result.stderr  # a library warning the user cannot act on
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

    # The start banner (rank 0 only) states the model's size, whole and per rank, as the exported weights have it.
    total = sum(t.numel() for name, t in state.items() if name != "transformer.lm_head.weight")  # tied to the embedding
    banner = result.stdout
    assert banner.count("modalities train\n") == 1 and banner.count("modalities train: done") == 1
    assert "ranks       2 on cpu, mesh dp_shard=2" in banner
    assert f"parameters ({total:,});" in banner
    per_rank = re.search(r"\(\d[\d,]*\); ([\d.]+)K (?:to ([\d.]+)K per rank|on each rank)", banner)
    low, high = float(per_rank.group(1)), float(per_rank.group(2) or per_rank.group(1))
    assert abs((low + high) * 1000 - total) <= 100  # FSDP2 shards: the two ranks hold the whole model between them
    assert "512 tokens = 8 samples x 64 tokens (micro-batch 4 x 1 accumulated x 2 data-parallel)" in banner
    assert "8 steps, 4,096 tokens" in banner
    assert re.search(r"finished +8 steps, 4,096 tokens", banner)
    assert str(latest.resolve()) in banner or str(tmp_path / "qs" / "checkpoints" / "step_8") in banner
    assert torch.equal(hf.transformer.wte.weight, state["transformer.wte.weight"])  # the trained weights
    out = hf.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=5, do_sample=False)
    assert out.shape == (1, 8)

    # Setting the Modalities-style restart skip as well as --resume would skip the consumed samples twice. (One
    # process, in this one: the refusal is the loader's, whatever the number of ranks.)
    one_rank = ["--set", "settings.step_profile.local_train_micro_batch_size=8"]
    resumed = run_in_process(1, "train", str(REPO / "configs" / "quickstart.yaml"), "--experiments-root", str(tmp_path),
                             "--experiment-id", "qs-twice", *SMALL, *one_rank,
                             "--resume", str(tmp_path / "qs" / "checkpoints" / "step_4"),
                             "--set", "settings.training_progress.num_seen_samples=64")
    assert resumed.returncode == 1
    assert "step_4" in resumed.stderr
    assert "skip_num_global_samples back to 0" in resumed.stderr

    # On another number of ranks: one process (in this one) with the same global batch (8 samples) continues the
    # 2-rank run from step 4, on the same samples in the same order, so its losses follow the uninterrupted run's.
    one = run_in_process(1, "train", str(REPO / "configs" / "quickstart.yaml"), "--experiments-root", str(tmp_path),
                         "--experiment-id", "qs-one", *SMALL, *one_rank,
                         "--resume", str(tmp_path / "qs" / "checkpoints" / "step_4"))
    assert one.returncode == 0, one.stderr[-3000:]
    assert "saved by 2 ranks and this run has 1" in one.stdout
    assert re.search(r"resuming after step 4 \(2,048 tokens\) from \S+step_4", one.stdout)
    assert re.search(r"finished +8 steps \(4 in this run\), 4,096 tokens", one.stdout)
    moved = read_results(tmp_path / "qs-one")
    assert sorted(moved) == [5, 6, 7, 8]
    for step, loss in moved.items():
        assert abs(loss - losses[step]) < 1e-4, (step, moved, losses)


def test_the_quick_start_trains_the_same_model_every_time(tmp_path, caplog):
    """Its model has a seed: two runs of the same config give the same losses (an unseeded init did not). Its
    first screen is ours: torch's warning about random operators on a CPU mesh (the seeded init on the FSDP2
    shards) is kept at debug level, not shown."""
    import logging
    import warnings

    from modalities.cli.main import main

    short = ["--set", "settings.training_target.num_target_steps=4", "--set", "settings.intervals.training_log_interval_in_steps=1",
             "--set", "settings.intervals.checkpointing_interval_in_steps=4", "--set", "settings.intervals.evaluation_interval_in_steps=4",
             "--set", "evaluation_subscriber={component_key: results_subscriber, variant_key: dummy, config: {}}",
             "--set", "progress_subscriber={component_key: progress_subscriber, variant_key: dummy, config: {}}"]
    with warnings.catch_warnings(record=True) as shown, \
            caplog.at_level(logging.DEBUG, logger="modalities.logging.library_warnings"):
        warnings.simplefilter("always")
        for name in ("a", "b"):
            assert main(["train", str(REPO / "configs" / "quickstart.yaml"), "--experiments-root", str(tmp_path),
                         "--experiment-id", name, *short]) == 0
    first, second = read_results(tmp_path / "a"), read_results(tmp_path / "b")
    assert sorted(first) == [1, 2, 3, 4] and first == second
    assert [str(w.message) for w in shown if "DTensor random operators" in str(w.message)] == []
    assert "DTensor random operators may not have complete support on cpu device mesh" in caplog.text
