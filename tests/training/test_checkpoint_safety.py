"""A checkpoint is data: a poisoned file (a pickle payload in .metadata, in a rank file, in a non-tensor entry)
runs nothing on any load path reachable from the CLI and is refused naming the file; a damaged file (flipped
bytes, truncated, garbage) is named instead of loading silently."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from modalities.checkpointing.checksums import CHECKSUM_FILE, SKIP_ENV
from modalities.checkpointing.dcp import read_model_state_dict
from modalities.cli.main import main as cli
from tests.training.conftest import TINY, train_in_process


class Payload:
    """Unpickling this creates the marker file: proof that code from the checkpoint ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("safety")
    assert train_in_process(root, "src", "--set", "settings.training_target.num_target_steps=2",
                            "--set", "settings.intervals.checkpointing_interval_in_steps=2") == 0
    return root / "src" / "checkpoints" / "step_2"


@pytest.fixture
def copy_of(checkpoint, tmp_path):
    def make() -> Path:
        folder = tmp_path / "ckpt" / "step_2"
        shutil.copytree(checkpoint, folder)
        return folder

    return make


def _load_paths(folder: Path, tmp_path: Path) -> dict:
    """Every CLI path that reads a checkpoint folder; each returns (exit code, stderr)."""
    config = tmp_path / "load.yaml"
    config.write_text(TINY.read_text() + f"""
loaded_model:
  component_key: model
  variant_key: checkpointed
  config:
    model: {{instance_key: model, pass_type: BY_REFERENCE}}
    checkpoint_loading: {{component_key: checkpoint_loading, variant_key: dcp, config: {{}}}}
    checkpoint_path: {folder}
""")
    return {
        "train --resume": lambda: train_in_process(tmp_path, "resumed", "--resume", str(folder),
                                                   "--set", "settings.training_target.num_target_steps=3"),
        "convert to-torch": lambda: cli(["convert", "to-torch", str(folder), str(tmp_path / "m.pt")]),
        "convert to-hf": lambda: cli(["convert", "to-hf", str(folder), str(tmp_path / "hf")]),
        "model/checkpointed": lambda: train_in_process(tmp_path, "warm", config=config),
    }


def _assert_refused_everywhere(folder: Path, tmp_path: Path, capsys, *expected: str) -> None:
    for name, load in _load_paths(folder, tmp_path).items():
        code = load()
        err = capsys.readouterr().err
        assert code == 1, (name, err[-1500:])
        assert "Traceback" not in err, name
        for text in expected:
            assert text in err, (name, err[-1500:])


def test_a_payload_in_the_metadata_runs_nothing(copy_of, tmp_path, capsys):
    folder = copy_of()
    marker = tmp_path / "pwned"
    (folder / ".metadata").write_bytes(pickle.dumps(Payload(marker)))
    (folder / CHECKSUM_FILE).unlink()  # an attacker rewrites the checksums too: the unpickler must hold alone
    _assert_refused_everywhere(folder, tmp_path, capsys, f"{folder / '.metadata'}: refusing to load 'pathlib")
    assert not marker.exists()


def test_a_payload_in_a_rank_file_runs_nothing(copy_of, tmp_path, capsys):
    folder = copy_of()
    marker = tmp_path / "pwned"
    state = torch.load(folder / "rank_0.pt", weights_only=True)
    state["sampler"] = Payload(marker)
    torch.save(state, folder / "rank_0.pt")
    (folder / CHECKSUM_FILE).unlink()
    code = train_in_process(tmp_path, "resumed", "--resume", str(folder),
                            "--set", "settings.training_target.num_target_steps=3")
    err = capsys.readouterr().err
    assert code == 1 and f"{folder / 'rank_0.pt'}: cannot be read as plain data" in err
    assert not marker.exists()


def test_a_payload_in_a_non_tensor_entry_runs_nothing(tmp_path):
    import torch.distributed.checkpoint as dcp

    from modalities.checkpointing.layout import CheckpointError
    from modalities.checkpointing.safe_dcp import safe_load

    marker = tmp_path / "pwned"
    dcp.save({"app": {"weight": torch.ones(2), "note": Payload(marker)}}, checkpoint_id=str(tmp_path / "c"),
             no_dist=True)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="checkpoint entry 'app.note' holds something other than plain data"):
        safe_load({"app": {"weight": torch.zeros(2), "note": None}}, tmp_path / "c")
    assert not marker.exists()


def test_a_saved_checkpoint_records_a_digest_of_every_file(checkpoint):
    import hashlib

    recorded = json.loads((checkpoint / CHECKSUM_FILE).read_text())["sha256"]
    files = sorted(p.name for p in checkpoint.iterdir() if p.name != CHECKSUM_FILE)
    assert sorted(recorded) == files and ".metadata" in files and "rank_0.pt" in files
    for name in files:
        assert recorded[name] == hashlib.sha256((checkpoint / name).read_bytes()).hexdigest(), name


def _flip_bytes(folder: Path, count: int = 16) -> Path:
    """Flip bytes in the middle of where the shard stores the embedding weights; return the shard."""
    from modalities.checkpointing.safe_dcp import read_metadata

    storage = read_metadata(folder).storage_data
    index = next(i for i in storage if i.fqn == "app.model.wte.weight")
    info = storage[index]
    shard = folder / info.relative_path
    data = bytearray(shard.read_bytes())
    middle = info.offset + info.length // 2
    for i in range(count):
        data[middle + i] ^= 0xFF
    shard.write_bytes(bytes(data))
    return shard


def test_flipped_bytes_in_a_shard_are_named(copy_of, tmp_path, capsys):
    folder = copy_of()
    shard = _flip_bytes(folder)
    _assert_refused_everywhere(folder, tmp_path, capsys, f"{shard} has changed since it was saved")


def test_without_the_check_flipped_bytes_would_load(copy_of, monkeypatch):
    # What the check prevents: the damaged shard loads as different weights, without any error.
    folder = copy_of()
    before = read_model_state_dict(folder)
    _flip_bytes(folder)
    monkeypatch.setenv(SKIP_ENV, "1")
    after = read_model_state_dict(folder)
    assert not torch.equal(before["wte.weight"], after["wte.weight"])
    assert all(torch.equal(before[k], after[k]) for k in before if k != "wte.weight")


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_truncated_or_garbage_shard_ends_in_a_message(copy_of, tmp_path, capsys, damage, monkeypatch):
    folder = copy_of()
    (shard,) = folder.glob("*.distcp")
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 3] if damage == "truncate" else b"\x00garbage" * 100)
    monkeypatch.setenv(SKIP_ENV, "1")  # past the checksums: the reader itself must fail cleanly
    _assert_refused_everywhere(folder, tmp_path, capsys, f"{folder}: cannot be loaded")


def test_a_damaged_checksum_record_and_a_missing_file(copy_of, tmp_path, capsys):
    folder = copy_of()
    (folder / "rank_0.pt").unlink()
    code = cli(["convert", "to-torch", str(folder), str(tmp_path / "m.pt")])
    assert code == 1 and f"{folder / 'rank_0.pt'} is missing" in capsys.readouterr().err
    (folder / CHECKSUM_FILE).write_text("{not json")
    code = cli(["convert", "to-torch", str(folder), str(tmp_path / "m.pt")])
    assert code == 1 and f"{folder / CHECKSUM_FILE}: unreadable" in capsys.readouterr().err
    (folder / CHECKSUM_FILE).write_text(json.dumps({"sha256": {"../../etc/passwd": "0"}}))
    code = cli(["convert", "to-torch", str(folder), str(tmp_path / "m.pt")])
    assert code == 1 and "names a file outside the checkpoint folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "record",
    [
        {"sha256": ["rank_0.pt"]},  # a list, not a mapping
        {"sha256": {"rank_0.pt": 5}},  # a digest that is not text
        {"sha256": {"rank_0.pt": None}},
        {"sha256": "abc"},
        {"digests": {}},  # the key missing
        ["sha256"],
    ],
)
def test_a_checksum_record_of_the_wrong_shape_is_unreadable(tmp_path, record):
    from modalities.checkpointing.checksums import verify_checksums
    from modalities.checkpointing.layout import CheckpointError

    (tmp_path / "rank_0.pt").write_bytes(b"weights")
    (tmp_path / CHECKSUM_FILE).write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match=r"checksums.json: unreadable .*the checkpoint folder is damaged"):
        verify_checksums(tmp_path)


def test_with_two_ranks_each_hashes_its_share_and_rank_0_records_both(tmp_path, monkeypatch):
    """A world of two without processes: rank 0 hashes names[0::2]; the gather hands it rank 1's share (as
    all_gather_object would), and the record holds every file's SHA-256 worked out here with hashlib."""
    import hashlib

    import torch.distributed as dist

    from modalities.checkpointing import checksums

    files = {"a.bin": b"first", "b.bin": b"second", "c.bin": b"third"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    expected = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    rank_1_share = {"b.bin": expected["b.bin"]}

    def all_gather_object(gathered, item):
        assert item == {"a.bin": expected["a.bin"], "c.bin": expected["c.bin"]}  # rank 0's share: names[0::2]
        gathered[:] = [item, rank_1_share]

    monkeypatch.setattr(checksums, "_rank_and_world", lambda: (0, 2))
    monkeypatch.setattr(dist, "all_gather_object", all_gather_object)
    checksums.record_checksums(tmp_path)
    assert json.loads((tmp_path / CHECKSUM_FILE).read_text()) == {"sha256": expected}
