"""Subscribers: dummy, rich progress bar, rich result tables, TensorBoard, Weights & Biases, and the JSONL
results file."""

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


def _routing_text(metrics: dict) -> str:
    """A mixture-of-experts run's routing on the progress line: its auxiliary loss, the share of routed slots over
    capacity and the busiest expert's load over the mean (models/moe/statistics.py); empty for other models."""
    if "moe aux loss" not in metrics:
        return ""
    over = metrics.get("moe over capacity")
    return (f"  moe aux {_fmt(metrics['moe aux loss'])}  over capacity "
            f"{'n/a' if over is None else f'{over:.1%}'}  load max/mean {_fmt(metrics.get('moe load max/mean'))}")


class RichProgressSubscriber:
    """One live bar for training (step, loss, tokens/s, ETA) and one per evaluation loader (its batches) while it
    runs. A resumed run's bar starts at the step it resumed from."""

    receives_run_start = True

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
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        self.train_task = self.progress.add_task(
            train_dataloader_tag, total=num_target_steps, completed=num_seen_steps, stats=""
        )
        self.eval_tasks: dict[str, int] = {}
        self.progress.start()

    def consume_message(self, message: Message) -> None:
        if not self.active:
            return
        if message.message_type is MessageType.RUN_START:
            info = message.payload
            # The ETA counts from here: the steps before (a resumed run's) took no time in this run.
            self.progress.reset(self.train_task, total=info.num_target_steps, completed=info.num_seen_steps)
        elif message.message_type is MessageType.PROGRESS:
            update = message.payload
            if update.experiment_status is ExperimentStatus.TRAIN:
                self.progress.update(self.train_task, completed=update.num_steps_done)
                return
            task = self.eval_tasks.get(update.dataloader_tag)
            if task is None or update.num_batches_done == 0:
                if task is not None:
                    self.progress.remove_task(task)
                task = self.eval_tasks[update.dataloader_tag] = self.progress.add_task(
                    f"eval {update.dataloader_tag}", total=update.num_batches_total, stats=""
                )
            if update.num_batches_done is not None:
                self.progress.update(task, completed=update.num_batches_done, total=update.num_batches_total)
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
                    f"grad norm {_fmt(metrics.get('grad norm last'))}{_routing_text(metrics)}",
                    highlight=False,
                )
            elif result.dataloader_tag in self.eval_tasks:
                task = self.eval_tasks[result.dataloader_tag]
                self.progress.update(task, stats=f"loss {_fmt(loss)}")
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


def _scalars(result) -> dict[str, float]:
    """A result's numbers as "<loader tag>/<name>" -> value (None and non-numbers left out)."""
    tag = result.dataloader_tag
    values = {}
    for group in (result.losses, result.metrics, result.throughput_metrics):
        for key, value in (group or {}).items():
            if hasattr(value, "item") and getattr(value, "numel", lambda: 1)() == 1:
                value = value.item()
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values[f"{tag}/{key}"] = float(value)
    return values


def _is_rank_zero(global_rank: int | None) -> bool:
    if global_rank is not None:
        return global_rank == 0
    import torch.distributed as dist

    return not dist.is_initialized() or dist.get_rank() == 0


class TensorBoardResultSubscriber:
    """`results_subscriber/tensorboard`: every result as scalars ("<loader tag>/<metric>" at the training step:
    losses, lr, grad norm, throughput, MFU), and the resolved config as text, in TensorBoard event files (rank 0).

    The event files go to ``log_dir``, by default ``tensorboard/`` in the experiment folder (known when the run
    starts). A resumed run purges the steps after its checkpoint, which an earlier attempt may have logged."""

    receives_run_start = True

    def __init__(self, global_rank: int | None = None, log_dir: str | os.PathLike | None = None, flush_secs: int = 30):
        self.active = _is_rank_zero(global_rank)
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.flush_secs = flush_secs
        self.writer = None

    def _open(self, log_dir: Path, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        log_dir.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(log_dir=str(log_dir), flush_secs=self.flush_secs, purge_step=purge_step)

    def consume_message(self, message: Message) -> None:
        if not self.active:
            return
        if message.message_type is MessageType.RUN_START:
            info = message.payload
            if self.writer is None:
                log_dir = self.log_dir or Path(info.experiment_folder) / "tensorboard"
                self._open(log_dir, purge_step=info.num_seen_steps + 1 if info.num_seen_steps else None)
            # Markdown: the config in a code block keeps its indentation.
            self.writer.add_text("config", "```yaml\n" + info.config_text + "\n```", global_step=info.num_seen_steps)
        elif message.message_type is MessageType.RESULT:
            if self.writer is None:  # used outside a run (no RUN_START): the given folder, or ./tensorboard
                self._open(self.log_dir or Path("tensorboard"))
            result = message.payload
            for name, value in _scalars(result).items():
                self.writer.add_scalar(name, value, global_step=result.num_train_steps_done)
            self.writer.flush()  # a result is rare (one per log interval): keep the files current for a live view

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class WandBResultSubscriber:
    """`results_subscriber/wandb`: every result logged to a W&B run (rank 0) whose config is the resolved config.

    The run starts when training does (RUN_START): its files go to ``directory``, by default ``wandb/`` in the
    experiment folder. A resumed run continues the W&B run of the same id."""

    receives_run_start = True

    def __init__(
        self,
        global_rank: int,
        project: str,
        experiment_id: str,
        mode="OFFLINE",
        directory: str | None = None,
        config_file_path: str | None = None,
        entity: str | None = None,
    ) -> None:
        self.run = None
        self.mode = getattr(mode, "value", mode).lower()
        self.active = global_rank == 0 and self.mode != "disabled"
        self.project, self.entity, self.experiment_id = project, entity, experiment_id
        self.directory = Path(directory) if directory is not None else None
        self.config_file_path = config_file_path

    def _start(self, folder: Path, config: dict | None, resumed: bool) -> None:
        os.environ.setdefault("WANDB_SILENT", "true")
        if self.mode == "offline":
            os.environ["WANDB_MODE"] = "offline"  # never touch the network, even for a login check
        import wandb

        folder.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=self.project,
            entity=self.entity,
            name=self.experiment_id,
            id=self.experiment_id,
            mode=self.mode,
            dir=str(folder),
            config=config,
            resume="allow" if resumed else None,
        )
        path = Path(self.config_file_path) if self.config_file_path else None
        if path is not None and path.is_file():
            self.run.save(str(path.resolve()), base_path=str(path.resolve().parent), policy="now")

    def consume_message(self, message: Message) -> None:
        if not self.active:
            return
        if message.message_type is MessageType.RUN_START:
            info = message.payload
            if self.run is None:
                folder = self.directory or Path(info.experiment_folder)
                self._start(folder, info.config, resumed=info.resumed_from is not None)
        elif message.message_type is MessageType.RESULT:
            if self.run is None:  # used outside a run (no RUN_START)
                self._start(self.directory or Path("wandb_storage"), None, resumed=False)
            result = message.payload
            self.run.log(_scalars(result), step=result.num_train_steps_done)

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
    Besides results, ``write_event`` marks where a run continued in the same file (results_file.py has the
    format)."""

    def __init__(self, path: Path, started: float | None = None) -> None:
        self.path = Path(path)
        self.file = self.path.open("a", encoding="utf-8")
        self.started = started if started is not None else time.time()  # the run's start (seconds since epoch)

    def _stamp(self) -> dict:
        now = time.time()
        return {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now)),
                "elapsed_s": round(now - self.started, 3)}

    def write_event(self, event: str, **fields) -> None:
        record = {"event": event, **fields, **self._stamp()}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def consume_message(self, message: Message) -> None:
        if message.message_type is not MessageType.RESULT:
            return
        self.file.write(json.dumps({**result_record(message.payload), **self._stamp()}) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()
