"""Checkpoint folders on disk: what a save leaves when it meets its own leftovers, what `latest` points to, what
deleting may not touch, which strategy saves and deletes what, and which folders a resume refuses. In one
process, on a dict of tensors (DCP saves any state dict), each outcome spelled out."""

from __future__ import annotations

import json
import os

import pytest
import torch

from modalities.checkpointing.dcp import DCPCheckpointSaving
from modalities.checkpointing.layout import (
    CheckpointError,
    point_latest_to,
    read_progress,
    resolve_checkpoint,
    write_text_atomically,
)
from modalities.checkpointing.saving import (
    CheckpointSaving,
    SaveEveryKStepsCheckpointingStrategy,
    SaveKMostRecentCheckpointsStrategy,
)


def _saver(tmp_path) -> DCPCheckpointSaving:
    return DCPCheckpointSaving(str(tmp_path), global_rank=0, experiment_id="exp")


def _save(saver, steps: int, value: float = 1.0) -> str:
    return saver.save({"num_seen_steps": steps}, {"w": torch.full((3,), value)}, {"rng": torch.zeros(1)}, "x: 1\n")


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_save_clears_a_killed_saves_leftovers_and_moves_latest_last(tmp_path):
    saver = _saver(tmp_path)
    leftover = saver.checkpoints_dir / ".tmp-step_4"
    leftover.mkdir(parents=True)
    (leftover / "garbage.distcp").write_bytes(b"half a shard")
    os.symlink("step_999", saver.checkpoints_dir / ".tmp-latest")  # a dangling link from a killed move
    final = _save(saver, 4)
    assert final == str(saver.checkpoints_dir / "step_4")
    assert _names(saver.checkpoints_dir) == ["last_checkpoint_info.json", "latest", "step_4"]
    assert os.readlink(saver.checkpoints_dir / "latest") == "step_4"
    assert "garbage.distcp" not in _names(saver.checkpoints_dir / "step_4")
    assert json.loads((saver.checkpoints_dir / "last_checkpoint_info.json").read_text()) == {
        "checkpoint_folder_path": str((saver.checkpoints_dir / "step_4").resolve())}
    assert read_progress(saver.checkpoints_dir / "step_4") == {"num_seen_steps": 4}


def test_saving_a_step_again_replaces_it(tmp_path):
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict_from_keys

    saver = _saver(tmp_path)
    _save(saver, 4, value=1.0)
    _save(saver, 4, value=2.0)
    loaded = _load_state_dict_from_keys(keys={"app.w"}, checkpoint_id=str(saver.checkpoints_dir / "step_4"))
    assert loaded["app"]["w"].tolist() == [2.0, 2.0, 2.0]
    assert _names(saver.checkpoints_dir) == ["last_checkpoint_info.json", "latest", "step_4"]


def test_a_failed_save_leaves_the_previous_checkpoint_and_latest(tmp_path, monkeypatch):
    import modalities.checkpointing.dcp as dcp_module

    saver = _saver(tmp_path)
    _save(saver, 2)

    def broken(folder):
        raise OSError("disk full")

    monkeypatch.setattr(dcp_module, "record_checksums", broken)
    with pytest.raises(OSError, match="disk full"):
        _save(saver, 4)
    assert _names(saver.checkpoints_dir) == ["last_checkpoint_info.json", "latest", "step_2"]
    assert os.readlink(saver.checkpoints_dir / "latest") == "step_2"


def test_a_save_that_fails_while_writing_shards_leaves_nothing_half_written(tmp_path, monkeypatch):
    import modalities.checkpointing.dcp as dcp_module

    saver = _saver(tmp_path)
    _save(saver, 2)

    def interrupted(state, checkpoint_id):
        (tmp_path / "exp" / "checkpoints" / ".tmp-step_4" / "__0_0.distcp").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(dcp_module.dcp, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _save(saver, 4)
    assert _names(saver.checkpoints_dir) == ["last_checkpoint_info.json", "latest", "step_2"]


def test_deleting_never_removes_what_latest_points_to(tmp_path):
    saver = _saver(tmp_path)
    _save(saver, 2)
    _save(saver, 4)
    point_latest_to(saver.checkpoints_dir, "step_2")  # e.g. a run resumed from step 2 and pointed latest back
    saver.delete(2)
    saver.delete(4)
    assert _names(saver.checkpoints_dir) == ["last_checkpoint_info.json", "latest", "step_2"]


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        # (saved?, deleted) for steps 2, 4, 6, 8, then 8 offered again
        (2, [(True, []), (True, []), (True, [2]), (True, [4]), (False, [])]),
        (1, [(True, []), (True, [2]), (True, [4]), (True, [6]), (False, [])]),
        (0, [(False, [])] * 5),
        (-1, [(True, []), (True, []), (True, []), (True, []), (False, [])]),
    ],
)
def test_k_most_recent_keeps_k_and_never_saves_a_step_twice(k, expected):
    strategy = SaveKMostRecentCheckpointsStrategy(k)
    got = [(i.save_current, i.checkpoints_to_delete)
           for i in (strategy.get_checkpoint_instruction(step) for step in (2, 4, 6, 8, 8))]
    assert got == expected


def test_every_k_steps_saves_multiples_and_when_forced():
    strategy = SaveEveryKStepsCheckpointingStrategy(3)
    assert [strategy.get_checkpoint_instruction(s).save_current for s in range(1, 8)] == [
        False, False, True, False, False, True, False]
    assert strategy.get_checkpoint_instruction(4, force=True).save_current


def test_old_checkpoints_go_only_after_the_new_one_is_saved():
    calls = []

    class Execution:
        checkpoints_dir = None

        def save(self, progress, app_state, rank_state, config_text):
            calls.append(("save", progress["num_seen_steps"]))
            return f"step_{progress['num_seen_steps']}"

        def delete(self, steps):
            calls.append(("delete", steps))

    saving = CheckpointSaving(SaveKMostRecentCheckpointsStrategy(1), Execution())
    assert saving.save_checkpoint({"num_seen_steps": 2}, None, {}) == "step_2"
    assert saving.save_checkpoint({"num_seen_steps": 4}, None, {}) == "step_4"
    assert calls == [("save", 2), ("save", 4), ("delete", 2)]


def test_a_resume_refuses_an_interrupted_or_incomplete_folder(tmp_path):
    saver = _saver(tmp_path)
    _save(saver, 2)
    folder = saver.checkpoints_dir
    # the experiment's checkpoints folder, or the link, resolve to the newest complete checkpoint
    assert resolve_checkpoint(folder) == (folder / "step_2").resolve()
    assert resolve_checkpoint(folder / "latest") == (folder / "step_2").resolve()
    interrupted = folder / ".tmp-step_4"
    interrupted.mkdir()
    (interrupted / ".metadata").write_bytes(b"")
    (interrupted / "training_progress.json").write_text("{}")
    with pytest.raises(CheckpointError, match=rf"never completed .* resume from {folder / 'latest'} instead"):
        resolve_checkpoint(interrupted)
    shards_only = folder / "step_6"
    shards_only.mkdir()
    (shards_only / ".metadata").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"not a complete checkpoint folder \(expected \.metadata and "
                                              r"training_progress\.json in it\)"):
        resolve_checkpoint(shards_only)
    assert resolve_checkpoint(shards_only, require_progress=False) == shards_only.resolve()  # weights only
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_checkpoint(folder / "step_8")
    (shards_only / "training_progress.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"step_6/training_progress\.json: cannot read the training progress"):
        read_progress(shards_only)


def test_text_written_atomically_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "info.json"
    write_text_atomically(target, "one")
    write_text_atomically(target, "two")
    assert target.read_text() == "two"
    assert _names(tmp_path) == ["info.json"]
