"""The reference's own training configs train here on CPU (device and data paths overridden), and their warm-start
configs continue a run exactly where its checkpoint left it, through the reference's command spellings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.compat.helpers import REFERENCE_TRAINING_CONFIGS as TRAINING
from tests.compat.helpers import SAMPLE_CORPUS, reference_training_overrides, train_losses, write_small_eval_set


@pytest.fixture(scope="module")
def small_eval_set(tmp_path_factory) -> Path:
    """The first 20 documents of the sample corpus: a test set that evaluates in a moment."""
    return write_small_eval_set(tmp_path_factory.mktemp("data") / "small.pbin")


def _modalities(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modalities", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def test_fsdp1_config_trains_and_its_warm_start_continues_exactly(tmp_path, small_eval_set):
    overrides = reference_training_overrides(tmp_path, small_eval_set, fsdp2=False)
    run = _modalities("run", "--config_file_path", TRAINING / "config_lorem_ipsum_long_fsdp1.yaml",
                      "--experiments_root_path", tmp_path / "exp", "--experiment_id", "full", *overrides, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "`modalities run --config_file_path CFG` is the reference's spelling" in run.stderr
    full = train_losses(tmp_path / "exp" / "full" / "results.jsonl")
    assert sorted(full) == [1, 2, 3, 4, 5, 6]
    checkpoints = tmp_path / "checkpoints"
    name = "seen_steps_4-seen_tokens_1024-target_steps_6-target_tokens_77824.bin"
    model, optimizer = checkpoints / f"eid_full-model-{name}", checkpoints / f"eid_full-optimizer-{name}"
    assert model.is_file() and optimizer.is_file()  # the reference's FSDP1 file names
    latest = json.loads((checkpoints / "last_checkpoint_info.json").read_text())
    assert latest["model_checkpoint_path"].endswith("eid_full-model-seen_steps_6-seen_tokens_1536-target_steps_6-target_tokens_77824.bin")

    info = tmp_path / "info_step4.json"
    info.write_text(json.dumps({"model_checkpoint_path": str(model), "optimizer_checkpoint_path": str(optimizer)}))
    warm = _modalities("warmstart", "--config_file_path", TRAINING / "config_lorem_ipsum_long_fsdp1_warmstart.yaml",
                       "--last_checkpoint_info_file_path", info, "--experiments_root_path", tmp_path / "exp",
                       "--experiment_id", "warm", *overrides, cwd=tmp_path)
    assert warm.returncode == 0, warm.stderr[-3000:]
    continued = train_losses(tmp_path / "exp" / "warm" / "results.jsonl")
    assert sorted(continued) == [5, 6]  # progress, data position and schedule taken from the checkpoint
    for step in (5, 6):
        assert continued[step] == pytest.approx(full[step], abs=1e-5)


def test_fsdp2_config_trains_and_its_dcp_warm_start_continues_exactly(tmp_path, small_eval_set):
    overrides = reference_training_overrides(tmp_path, small_eval_set, fsdp2=True)
    run = _modalities("train", TRAINING / "config_lorem_ipsum_long_fsdp2.yaml", "--experiments-root", tmp_path / "exp",
                      "--experiment-id", "full", *overrides, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    full = train_losses(tmp_path / "exp" / "full" / "results.jsonl")
    step_4 = tmp_path / "checkpoints" / "full" / "checkpoints" / "step_4"
    info = tmp_path / "info_step4.json"
    info.write_text(json.dumps({"checkpoint_folder_path": str(step_4)}))
    warm = _modalities("train", TRAINING / "config_lorem_ipsum_long_fsdp2_warmstart.yaml", "--last-checkpoint-info", info,
                       "--experiments-root", tmp_path / "exp", "--experiment-id", "warm", *overrides, cwd=tmp_path)
    assert warm.returncode == 0, warm.stderr[-3000:]
    continued = train_losses(tmp_path / "exp" / "warm" / "results.jsonl")
    assert sorted(continued) == [5, 6]
    for step in (5, 6):
        assert continued[step] == pytest.approx(full[step], abs=1e-5)


@pytest.mark.parametrize(
    ("config", "mesh"),
    [("config_lorem_ipsum_long_fsdp2_pp.yaml", "pp=4 x dp_shard=1"),  # Interleaved1F1B, bf16, a NaN hook
     ("config_lorem_ipsum_long_fsdp2_pp_tp.yaml", "pp=2 x dp_shard=1 x tp=2")],  # GPipe
)
def test_pipeline_configs_train_on_four_cpu_ranks(tmp_path, small_eval_set, config, mesh):
    from tests.training.conftest import REPO, subprocess_env, torchrun_cmd

    # the data-parallel degree is what the 4 ranks leave (1): -1, as the configs say
    overrides = reference_training_overrides(tmp_path, small_eval_set, fsdp2=False) + [
        "--set", "device_mesh.config.device_type=cpu", "--set", "settings.step_profile.sequence_length=64"]
    done = subprocess.run(
        torchrun_cmd(4, "train", str(TRAINING / config), "--experiments-root", str(tmp_path / "exp"),
                     "--experiment-id", "pp", *overrides),
        cwd=tmp_path, env=subprocess_env(PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"mesh {mesh}" in done.stdout
    losses = train_losses(tmp_path / "exp" / "pp" / "results.jsonl")
    assert sorted(losses) == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(value) for value in losses.values())
    # the warm-up of a tiny model on the sample corpus: the loss falls from the start
    assert losses[max(losses)] < losses[min(losses)]


@pytest.mark.parametrize(
    ("config", "nproc", "mesh", "sequence_length"),
    [("config_lorem_ipsum_long_fsdp2_cp.yaml", 2, "dp_shard=1 x cp=2", 64),  # model/gpt2_cp
     ("config_lorem_ipsum_long_fsdp2_pp_cp.yaml", 4, "pp=4 x dp_shard=1", 64),  # Interleaved1F1B, a NaN hook
     # model/gpt2_tp with context_parallel_load_balancer, a seeded initializer given the mesh; its own 16 tokens
     ("config_lorem_ipsum_long_fsdp2_pp_tp_cp.yaml", 8, "pp=2 x dp_shard=1 x cp=2 x tp=2", None)],
)
def test_context_parallel_configs_train_on_cpu_ranks_and_checkpoint(tmp_path, small_eval_set, config, nproc, mesh,
                                                                   sequence_length):
    """The reference's newer context-parallel configs, unchanged but for the device, the data paths, the steps
    (2, evaluated and checkpointed at the end) and the sequence length: bf16, the full 50304 vocabulary."""
    from tests.training.conftest import REPO, subprocess_env, torchrun_cmd

    values = {
        "device_mesh.config.device_type": "cpu",
        "settings.paths.train_dataset_path": SAMPLE_CORPUS,
        "settings.paths.test_dataset_path": small_eval_set,
        "settings.paths.checkpoint_saving_path": tmp_path / "checkpoints",
        "settings.training_target.num_target_steps": 2,
        "settings.intervals.checkpointing_interval_in_steps": 2,
        "settings.intervals.evaluation_interval_in_steps": 2,
        "settings.intervals.training_log_interval_in_steps": 1,
    }
    if sequence_length is not None:
        values["settings.step_profile.sequence_length"] = sequence_length
    overrides = [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]
    done = subprocess.run(
        torchrun_cmd(nproc, "train", str(TRAINING / config), "--experiments-root", str(tmp_path / "exp"),
                     "--experiment-id", "cp", *overrides),
        cwd=tmp_path, env=subprocess_env(PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"mesh {mesh}" in done.stdout
    losses = train_losses(tmp_path / "exp" / "cp" / "results.jsonl")
    assert sorted(losses) == [1, 2] and all(np.isfinite(value) for value in losses.values())
    checkpoint = tmp_path / "checkpoints" / "cp" / "checkpoints" / "step_2"
    assert (checkpoint / "training_progress.json").is_file() and any(checkpoint.glob("*.distcp"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("config", "nproc", "mesh"),
    [("config_lorem_ipsum_long_moe_ep_fsdp2.yaml", 4, "dp_shard=1 x tp=4 (experts over tp, which reads its own data)"),
     ("config_lorem_ipsum_long_moe_ep_fsdp2_tp.yaml", 4, "dp_shard=2 x tp=2 (experts over ep=2 of dp_shard)"),
     ("config_lorem_ipsum_long_moe_ep_fsdp2_tp_pp.yaml", 8, "pp=2 x dp_shard=2 x tp=2 (experts over ep=2 of dp_shard)")],
)
def test_moe_configs_train_on_cpu_ranks_and_write_a_checkpoint(tmp_path, small_eval_set, config, nproc, mesh):
    """The reference's MoE configs: expert parallelism in its older spelling (over tp, with activation
    checkpointing), with tensor parallelism, and with tensor and pipeline parallelism (bf16 parameters)."""
    from tests.training.conftest import REPO, subprocess_env, torchrun_cmd

    overrides = reference_training_overrides(tmp_path, small_eval_set, fsdp2=False) + [
        "--set", "device_mesh.config.device_type=cpu", "--set", "settings.step_profile.sequence_length=64",
        "--set", "settings.training_target.num_target_steps=2", "--set", "settings.intervals.evaluation_interval_in_steps=2"]
    done = subprocess.run(
        torchrun_cmd(nproc, "train", str(TRAINING / config), "--experiments-root", str(tmp_path / "exp"),
                     "--experiment-id", "moe", *overrides),
        cwd=tmp_path, env=subprocess_env(PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"mesh {mesh}" in done.stdout
    records = [json.loads(line) for line in (tmp_path / "exp" / "moe" / "results.jsonl").read_text().splitlines()]
    train = {r["num_train_steps_done"]: r for r in records if r.get("dataloader_tag") == "train"}
    assert sorted(train) == [1, 2]
    assert all(np.isfinite(r["losses"]["train loss avg"]) and r["metrics"]["moe aux loss"] > 0 for r in train.values())
    assert (tmp_path / "checkpoints" / "moe" / "checkpoints" / "step_2" / "training_progress.json").is_file()
