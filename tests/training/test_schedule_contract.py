"""`validate` checks a run's learning-rate schedule against the checkpoint it continues from (warm start through
app_state/dcp, --resume), reading the checkpoint as plain data without torch: it warns at each config field
that differs, naming the checkpoint's value, and refuses what cannot be honoured (training/contract/schedule.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import torch.distributed.checkpoint as dcp

from modalities.config.compiler import compile_file
from modalities.config.diagnostics import ERROR, WARNING
from modalities.training.app_state import AppState
from tests.compat.helpers import REFERENCE_CONFIGS
from tests.training.conftest import REPO, TINY, standins_registry

SCHEDULER = ("lr_scheduler={component_key: scheduler, variant_key: %s, config: {optimizer: {instance_key: optimizer, "
             "pass_type: BY_REFERENCE}, %s}}")
ONECYCLE = SCHEDULER % ("onecycle_lr", "max_lr: 0.02, total_steps: '${settings.training_target.num_target_steps}'")
RAW = ("app_state_raw={component_key: app_state, variant_key: raw, config: {model: {instance_key: model, pass_type: "
       "BY_REFERENCE}, optimizer: {instance_key: optimizer, pass_type: BY_REFERENCE}, lr_scheduler: {instance_key: "
       "lr_scheduler, pass_type: BY_REFERENCE}}}")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A folder as the reference writes it (shards alone): a OneCycleLR of 6 steps (max_lr 0.02, momentum not
    cycled: the config's default) after step 3."""
    folder = tmp_path_factory.mktemp("checkpoint") / "seen_steps_3"
    model = torch.nn.Linear(4, 4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.02, total_steps=6, cycle_momentum=False)
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    dcp.save({"app": AppState(model, optimizer, scheduler)}, checkpoint_id=str(folder), no_dist=True)
    return folder


def _warm_start(checkpoint, *flags: str, scheduler: str = ONECYCLE, target: int = 9) -> list:
    overrides = [scheduler, RAW,
                 f"app_state={{component_key: app_state, variant_key: dcp, config: {{raw_app_state: {{instance_key: "
                 f"app_state_raw, pass_type: BY_REFERENCE}}, checkpoint_dir_path: {checkpoint}}}}}",
                 "settings.training_progress.num_seen_steps=3", "settings.training_progress.last_step=2",
                 f"settings.training_target.num_target_steps={target}", *flags]
    return compile_file(TINY, standins_registry(), overrides=overrides, root="training").diagnostics


def _at(diagnostics, severity: str, path: str) -> list[str]:
    return [d.message for d in diagnostics if d.severity == severity and ".".join(map(str, d.path)) == path]


@pytest.mark.parametrize("target", [9, 4], ids=["raised", "lowered"])
def test_a_changed_target_is_a_warning_at_the_field_naming_the_checkpoints_value(checkpoint, target):
    diagnostics = _warm_start(checkpoint, target=target)
    assert not [d for d in diagnostics if d.severity == ERROR], [d.message for d in diagnostics]
    (message,) = _at(diagnostics, WARNING, "lr_scheduler.config.total_steps")
    assert f"{checkpoint} (saved at step 3) has total_steps 6, the config {target}" in message
    assert "follows the config's schedule from step 3 on" in message


def test_an_unchanged_schedule_says_nothing(checkpoint):
    assert not [d for d in _warm_start(checkpoint, target=6) if "lr_scheduler" in ".".join(map(str, d.path))]


@pytest.mark.parametrize(("scheduler", "target", "severity", "field", "expected"), [
    (("onecycle_lr", "max_lr: 0.05, total_steps: 6"), 6, WARNING, "config.max_lr", "has max_lr 0.02, the config 0.05"),
    (("cosine_annealing_lr", "t_max: 9"), 9, WARNING, "variant_key",
     "holds the state of another kind of scheduler (OneCycleLR)"),
    # the issue's crash: OneCycleLR of a fixed 6 steps asked to go on to step 9 ("Tried to step 7 times")
    (("onecycle_lr", "max_lr: 0.02, total_steps: 6"), 9, ERROR, "config.total_steps",
     "OneCycleLR's schedule is 6 steps long, and the run trains to step 9"),
    (("onecycle_lr", "max_lr: 0.02, total_steps: 9, last_epoch: 5"), 9, ERROR, "config.last_epoch",
     "built after step 6 (last_epoch 5), past step 3, where the run starts"),
], ids=["max_lr", "another_kind", "too_short", "built_past_the_start"])
def test_a_finding_at_the_field(checkpoint, scheduler, target, severity, field, expected):
    diagnostics = _warm_start(checkpoint, scheduler=SCHEDULER % scheduler, target=target)
    (message,) = _at(diagnostics, severity, f"lr_scheduler.{field}")
    assert expected in message


def test_a_start_of_another_step_is_named(checkpoint):
    diagnostics = _warm_start(checkpoint, "settings.training_progress.num_seen_steps=0",
                              "settings.training_progress.last_step=-1", target=6)
    (message,) = _at(diagnostics, WARNING, "app_state.config.checkpoint_dir_path")
    assert "the checkpoint's schedule stood at step 3, and the run starts at step 0" in message


def test_nothing_left_to_train_is_a_warning(checkpoint):
    (message,) = _at(_warm_start(checkpoint, target=3), WARNING, "settings.training_target.num_target_steps")
    assert "the run starts after step 3 and its target is 3 steps: nothing to train" in message


def test_a_resume_is_checked_against_its_checkpoint(checkpoint, tmp_path):
    import shutil

    folder = tmp_path / "step_3"
    shutil.copytree(checkpoint, folder)
    (folder / "training_progress.json").write_text(json.dumps({"num_seen_steps": 3}))
    overrides = [ONECYCLE, "settings.training_target.num_target_steps=8"]
    diagnostics = compile_file(TINY, standins_registry(), overrides=overrides, root="training",
                               resume_from=str(folder)).diagnostics
    (message,) = _at(diagnostics, WARNING, "lr_scheduler.config.total_steps")
    assert "has total_steps 6, the config 8" in message


def test_validate_reads_the_checkpoint_without_torch(checkpoint, tmp_path):
    """The reference's FSDP2 warm-start config, its target raised by --set (its own is computed when built)."""
    info = tmp_path / "info.json"
    info.write_text(json.dumps({"checkpoint_folder_path": str(checkpoint)}))
    config = REFERENCE_CONFIGS / "config_files" / "training" / "config_lorem_ipsum_long_fsdp2_warmstart.yaml"
    sample = REPO / "data" / "sample" / "corpus.pbin"
    code = (
        "import sys\nfrom modalities.cli.main import main\n"
        f"rc = main(['validate', {str(config)!r}, '--last-checkpoint-info', {str(info)!r}, "
        f"'--set', 'settings.paths.train_dataset_path={sample}', '--set', 'settings.paths.test_dataset_path={sample}', "
        "'--set', 'settings.training_target.num_target_steps=9'])\n"
        "print('RC', rc, 'TORCH', 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert "RC 0 TORCH False" in done.stdout, done.stdout + done.stderr
    assert "lr_scheduler.config.total_steps: the checkpoint" in done.stderr
    assert "has total_steps 6, the config 9" in done.stderr
