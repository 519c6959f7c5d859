"""`results_subscriber/wandb` offline: it writes W&B's offline run folder and never opens a connection outward."""

import socket

import pytest

from modalities.batch import EvaluationResultBatch
from modalities.logging.broker import Message, MessageType
from modalities.logging.subscribers import WandBResultSubscriber


@pytest.fixture
def no_outward_connections(monkeypatch):
    """Any connection from this process to a non-loopback address fails the test (W&B's own service process
    talks to this one over loopback or a unix socket)."""
    attempts = []
    real_connect = socket.socket.connect

    def guarded_connect(self, address):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in ("127.0.0.1", "localhost", "::1"):
            attempts.append(address)
            raise OSError(f"test: outward connection to {address} refused")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    # were anything to try the W&B server, it would find nothing here
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    return attempts


def _result(step: int, loss: float) -> Message:
    return Message(
        MessageType.RESULT,
        EvaluationResultBatch(
            dataloader_tag="train",
            num_train_steps_done=step,
            losses={"train loss avg": loss},
            metrics={"grad norm avg": 1.0},
            throughput_metrics={"tokens/s": 100.0, "mfu": None},
        ),
    )


def test_offline_wandb_writes_its_run_folder_without_network(tmp_path, no_outward_connections):
    config_file = tmp_path / "cfg.yaml"
    config_file.write_text("settings: {}\n")
    subscriber = WandBResultSubscriber(
        global_rank=0,
        project="proj",
        experiment_id="exp-1",
        mode="OFFLINE",
        directory=str(tmp_path / "wandb_storage"),
        config_file_path=str(config_file),
    )
    subscriber.consume_message(_result(1, 3.5))
    subscriber.consume_message(_result(2, 3.0))
    subscriber.close()

    (run_folder,) = (tmp_path / "wandb_storage" / "wandb").glob("offline-run-*-exp-1")
    (run_file,) = run_folder.glob("run-exp-1.wandb")
    assert run_file.stat().st_size > 0
    assert (run_folder / "files" / "cfg.yaml").is_file()  # the config file saved with the run
    assert no_outward_connections == []


def test_wandb_on_other_ranks_or_disabled_writes_nothing(tmp_path, no_outward_connections):
    for rank, mode in ((1, "OFFLINE"), (0, "DISABLED")):
        subscriber = WandBResultSubscriber(
            global_rank=rank, project="p", experiment_id="e", mode=mode, directory=str(tmp_path / f"w{rank}")
        )
        subscriber.consume_message(_result(1, 1.0))
        subscriber.close()
    assert list(tmp_path.iterdir()) == []
