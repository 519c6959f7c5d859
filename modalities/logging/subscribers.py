"""Subscribers: dummy, rich progress bar, rich result tables, Weights & Biases, and the JSONL results file."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

from modalities.logging.broker import ExperimentStatus, Message, MessageType


class DummySubscriber:
    def __init__(self, **_unused) -> None:
        pass

    def consume_message(self, message: Message) -> None:
        pass

    def close(self) -> None:
        pass


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


class RichProgressSubscriber:
    """One live bar for training (step, loss, tokens/s) and one per evaluation loader while it runs."""

    def __init__(
        self,
        global_rank: int,
        num_target_steps: int,
        num_seen_steps: int = 0,
        train_dataloader_tag: str = "train",
        eval_dataloaders=None,
    ) -> None:
        self.active = global_rank == 0
        self.train_tag = train_dataloader_tag
        if not self.active:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
        )
        self.train_task = self.progress.add_task(
            train_dataloader_tag, total=num_target_steps, completed=num_seen_steps, stats=""
        )
        self.eval_tasks: dict[str, int] = {}
        self.progress.start()

    def consume_message(self, message: Message) -> None:
        if not self.active:
            return
        if message.message_type is MessageType.PROGRESS:
            update = message.payload
            if update.experiment_status is ExperimentStatus.TRAIN:
                self.progress.update(self.train_task, completed=update.num_steps_done)
            elif update.dataloader_tag not in self.eval_tasks:
                self.eval_tasks[update.dataloader_tag] = self.progress.add_task(
                    f"eval {update.dataloader_tag}", total=None, stats=""
                )
        else:
            result = message.payload
            loss = next(iter(result.losses.values()), None)
            if result.dataloader_tag == self.train_tag:
                throughput = result.throughput_metrics
                stats = f"loss {_fmt(loss)}  tokens/s {_fmt(throughput.get('tokens/s'))}"
                if throughput.get("mfu") is not None:
                    stats += f"  MFU {throughput['mfu']:.1%}"
                self.progress.update(self.train_task, stats=stats)
                # A line per logging interval stays in the scrollback (and in a SLURM log, where no bar is drawn).
                metrics = result.metrics
                self.progress.console.print(
                    f"step {result.num_train_steps_done:>6}  {stats}  lr {_fmt(metrics.get('lr mean'))}  "
                    f"grad norm {_fmt(metrics.get('grad norm last'))}",
                    highlight=False,
                )
            elif result.dataloader_tag in self.eval_tasks:
                self.progress.update(self.eval_tasks[result.dataloader_tag], stats=f"loss {_fmt(loss)}", total=1, completed=1)
                self.progress.console.print(
                    f"eval {result.dataloader_tag} after step {result.num_train_steps_done}: loss {_fmt(loss)}",
                    highlight=False,
                )

    def close(self) -> None:
        if self.active:
            self.progress.stop()


class RichResultSubscriber:
    def __init__(self, global_rank: int, num_ranks: int | None = None) -> None:
        self.active = global_rank == 0
        if self.active:
            from rich.console import Console

            self.console = Console()

    def consume_message(self, message: Message) -> None:
        if not self.active or message.message_type is not MessageType.RESULT:
            return
        from rich.table import Table

        result = message.payload
        table = Table(title=f"{result.dataloader_tag} after step {result.num_train_steps_done}")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for group in (result.losses, result.metrics, result.throughput_metrics):
            for key, value in group.items():
                table.add_row(key, _fmt(value))
        self.console.print(table)

    def close(self) -> None:
        pass


class WandBResultSubscriber:
    def __init__(
        self,
        global_rank: int,
        project: str,
        experiment_id: str,
        mode="OFFLINE",
        directory: str = "wandb_storage",
        config_file_path: str | None = None,
        entity: str | None = None,
    ) -> None:
        self.run = None
        mode = getattr(mode, "value", mode).lower()
        if global_rank != 0 or mode == "disabled":
            return
        os.environ.setdefault("WANDB_SILENT", "true")
        if mode == "offline":
            os.environ["WANDB_MODE"] = "offline"  # never touch the network, even for a login check
        import wandb

        Path(directory).mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=project, entity=entity, name=experiment_id, id=experiment_id, mode=mode, dir=directory
        )
        if config_file_path and Path(config_file_path).is_file():
            self.run.save(str(Path(config_file_path).resolve()), base_path=str(Path(config_file_path).resolve().parent))

    def consume_message(self, message: Message) -> None:
        if self.run is None or message.message_type is not MessageType.RESULT:
            return
        result = message.payload
        tag = result.dataloader_tag
        values = {f"{tag}/{key}": value for group in (result.losses, result.metrics, result.throughput_metrics)
                  for key, value in group.items() if value is not None}
        self.run.log(values, step=result.num_train_steps_done)

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


def result_record(result) -> dict:
    """A result as plain JSON values (tensors become numbers or lists)."""

    def plain(value):
        if hasattr(value, "tolist"):
            return value.tolist()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(asdict(result))


class ResultsToDiscSubscriber:
    """`results_subscriber/to_disc`: each result as one JSON line of ``output_file_path`` (rank 0 writes)."""

    def __init__(self, output_file_path: str | os.PathLike) -> None:
        import torch.distributed as dist

        self.active = not dist.is_initialized() or dist.get_rank() == 0
        self.path = Path(output_file_path)
        self.file = None
        if self.active:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = self.path.open("a", encoding="utf-8")

    def consume_message(self, message: Message) -> None:
        if self.file is None or message.message_type is not MessageType.RESULT:
            return
        self.file.write(json.dumps(result_record(message.payload)) + "\n")
        self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class JSONLResultsWriter:
    """Appends every result as one JSON line to the experiment's results file (rank 0); flushed line by line.

    Besides results, an event line marks where a run continued in the same file: ``{"event": "resume",
    "num_train_steps_done": N, "checkpoint": ...}`` (results after it replace any of steps > N written before it,
    by a run that went on past its last checkpoint), or ``"restart"`` (a fresh start after an attempt that saved
    no checkpoint). Readers skip lines that have an "event" key or use them to cut the earlier lines."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.file = self.path.open("a", encoding="utf-8")

    def write_event(self, event: str, **fields) -> None:
        record = {"event": event, **fields, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def consume_message(self, message: Message) -> None:
        if message.message_type is not MessageType.RESULT:
            return
        self.file.write(json.dumps(result_record(message.payload)) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()
