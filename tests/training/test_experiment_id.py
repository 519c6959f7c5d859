"""Which experiment id a training run compiles with (modalities.api.choose_experiment_id, what `modalities train`
asks before compiling): in-process, one case a row."""

from __future__ import annotations

import json
import re

import pytest

from modalities.api import ExperimentIdError, choose_experiment_id
from modalities.checkpointing.layout import CheckpointError

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d__\d\d-\d\d-\d\d")


@pytest.fixture(autouse=True)
def one_process(monkeypatch):
    for name in ("MODALITIES_EXPERIMENT_ID", "WORLD_SIZE", "TORCHELASTIC_USE_AGENT_STORE"):
        monkeypatch.delenv(name, raising=False)


def checkpoint(tmp_path, progress: dict) -> str:
    folder = tmp_path / "origin" / "checkpoints" / "step_2"
    folder.mkdir(parents=True)
    (folder / ".metadata").write_bytes(b"")
    (folder / "training_progress.json").write_text(json.dumps(progress))
    return str(folder)


def test_the_id_given_wins_over_the_environment_and_the_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("MODALITIES_EXPERIMENT_ID", "from-env")
    assert choose_experiment_id("given", checkpoint(tmp_path, {"experiment_id": "origin"})) == "given"


@pytest.mark.parametrize("resume", [None, "auto"])
def test_the_environment_gives_the_id_when_none_is_given(monkeypatch, resume):
    monkeypatch.setenv("MODALITIES_EXPERIMENT_ID", "from-env")
    assert choose_experiment_id(None, resume) == "from-env"


def test_resume_auto_without_an_id_is_refused_with_what_to_give():
    with pytest.raises(ExperimentIdError, match="--resume auto needs a fixed experiment id.*--experiment-id NAME"):
        choose_experiment_id(None, "auto")


def test_resume_auto_with_an_id_keeps_it():
    assert choose_experiment_id("job", "auto") == "job"


def test_resuming_a_checkpoint_continues_in_the_experiment_that_saved_it(tmp_path):
    assert choose_experiment_id(None, checkpoint(tmp_path, {"experiment_id": "origin"})) == "origin"


def test_a_checkpoint_without_an_id_gives_the_default_timestamp(tmp_path):
    assert TIMESTAMP.fullmatch(choose_experiment_id(None, checkpoint(tmp_path, {"num_seen_steps": 2})))


def test_no_id_and_no_checkpoint_gives_the_default_timestamp():
    assert TIMESTAMP.fullmatch(choose_experiment_id(None, None))


def test_a_checkpoint_that_does_not_exist_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        choose_experiment_id(None, str(tmp_path / "missing"))


@pytest.mark.parametrize("store", [None, "False"])
def test_several_ranks_without_torchruns_store_must_be_given_the_id(monkeypatch, store):
    monkeypatch.setenv("WORLD_SIZE", "2")
    if store is not None:
        monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", store)
    with pytest.raises(ExperimentIdError, match="provides no torchrun store"):
        choose_experiment_id(None, None)
    assert choose_experiment_id("given", None) == "given"  # an id given needs no store
