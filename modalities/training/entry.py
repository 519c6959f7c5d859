"""The executor: ``run_training(run, ...)`` trains with the built, typed parts of a training run.

It receives a ``TrainingRunConfig`` (training/run.py) whose component fields hold built objects and whose
settings are validated, plus where to write; it never reads a config file and never calls back into the
compiler. ``modalities.api.train_compiled`` gets it there: compile (with the training contract), start the
process group, claim the experiment folder, build, then call this.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AUTO = "auto"  # --resume auto: the experiment's latest complete checkpoint if there is one, else a fresh start


class TrainingConfigError(ValueError):
    pass


def claim_experiment(experiments_root: Path, experiment_id: str, resume_from) -> Any:
    """Before anything is built: rank 0 holds the experiment folder for the run (a second run with this id stops
    here), and a fresh run refuses a folder that already holds a run's results. Every rank gets the answer.
    Returns the claim (release it when the run ends) or None on other ranks."""
    import torch.distributed as dist

    from modalities.training.experiment import ExperimentClaim, ExperimentInUse, existing_run_in

    claim, problem = None, None
    if dist.get_rank() == 0:
        try:
            claim = ExperimentClaim(Path(experiments_root) / experiment_id)
        except ExperimentInUse as e:
            problem = str(e)
        if problem is None and resume_from is None:
            existing = existing_run_in(Path(experiments_root), experiment_id)
            if existing is not None:
                problem = (
                    f"experiment '{experiment_id}' already has a run ({existing}); choose another --experiment-id, "
                    "or continue it with --resume <its checkpoint> (or --resume auto)"
                )
    box = [problem]
    if dist.get_world_size() > 1:
        dist.broadcast_object_list(box, src=0)  # every rank stops, not just rank 0
    if box[0]:
        if claim is not None:
            claim.release()
        raise TrainingConfigError(box[0])
    return claim


def run_training(
    run,
    *,
    device_type: str,
    experiment_id: str,
    experiments_root: str | os.PathLike,
    config_text: str,
    config_values: dict | None = None,
    resume_from: str | os.PathLike | None = None,
    stop_signals=None,
) -> dict:
    """Train ``run`` (a built TrainingRunConfig) in the started process group; returns the final progress.

    ``resume_from``: a checkpoint to continue from, or "auto" (this experiment's latest complete checkpoint, or
    a fresh start without one: what a requeued job wants). ``config_text`` is the resolved config, written
    beside the results and into every checkpoint; ``config_values`` the same as plain values (the run config
    TensorBoard and W&B receive). Rank 0 prints a start banner and an end summary. A stop signal ends the run
    after a checkpoint of the step it reached (TrainingStopped; see training/signals.py)."""
    import time

    started = time.time()
    plan = _plan(run, device_type, Path(experiments_root), experiment_id, resume_from)
    start = _restore(run, plan)
    if start.nothing_to_train is not None:
        return start.nothing_to_train
    report = _announce(run, plan, start, config_text, config_values, started)
    final, last_checkpoint = _loop(run, plan, start, report, config_text, stop_signals)
    return _finish(plan, report, final, started, last_checkpoint)


@dataclass
class _Plan:
    """What the run is asked to do: where it writes, up to which step, from which checkpoint (if any)."""

    rank: int
    device: Any  # torch.device
    experiments_root: Path
    experiment_id: str
    target: int  # settings.training_target.num_target_steps
    resume_from: str | os.PathLike | None  # "auto" resolved: a checkpoint, or None for a fresh start
    train_tag: str

    @property
    def experiment_folder(self) -> Path:
        return self.experiments_root / self.experiment_id


@dataclass
class _Start:
    """Where the run starts: the progress so far and how to put the data and RNG back where a checkpoint left
    them; or, when the target is already reached, the progress to return without training."""

    progress: Any = None  # TrainingProgress
    restore_rank_state: Callable | None = None
    nothing_to_train: dict | None = None


@dataclass
class _Report:
    """What the run tells: the facts of the start banner, the broker the subscribers hang on, the end summary."""

    info: Any  # RunInfo
    broker: Any  # MessageBroker
    summary: Any  # RunSummary


def _plan(run, device_type: str, experiments_root: Path, experiment_id: str, resume_from) -> _Plan:
    import torch.distributed as dist

    from modalities.checkpointing.layout import is_complete
    from modalities.training.distributed import local_device

    rank = dist.get_rank()
    device = local_device(device_type)
    if resume_from == AUTO:
        resume_from = _latest_checkpoint_of(run.checkpoint_saving, is_complete)
        if rank == 0:
            found = (
                f"resuming from {resume_from}"
                if resume_from
                else ("no complete checkpoint of this experiment yet; starting from the beginning")
            )
            print(f"--resume auto: {found}", flush=True)
    return _Plan(
        rank=rank,
        device=device,
        experiments_root=experiments_root,
        experiment_id=experiment_id,
        target=run.settings.training_target.num_target_steps,
        resume_from=resume_from,
        train_tag=getattr(run.train_dataloader, "dataloader_tag", None) or "train",
    )


def _restore(run, plan: _Plan) -> _Start:
    """The progress of the config (a fresh or warm start) or of the checkpoint resumed from, with model,
    optimizer and schedule loaded and positioned at that step."""
    from modalities.training.run import TrainingProgress

    seen = run.settings.training_progress
    start = _Start(progress=TrainingProgress(
        num_seen_steps=seen.num_seen_steps,
        num_seen_samples=seen.num_seen_samples,
        global_num_seen_tokens=seen.global_num_seen_tokens,
    ))
    if plan.resume_from is not None:
        start = _load_checkpoint(run, plan)
        if start.nothing_to_train is not None:
            return start
    elif start.progress.num_seen_steps >= plan.target:  # a warm start (settings.training_progress) at or past it
        _nothing_to_train(f"the run starts after step {start.progress.num_seen_steps}", plan.target, plan.rank)
        return _Start(nothing_to_train=start.progress.as_dict())
    _position_schedule(run.app_state, start.progress.num_seen_steps, plan.target, plan.rank)
    return start


def _load_checkpoint(run, plan: _Plan) -> _Start:
    import torch.distributed as dist

    from modalities.checkpointing.dcp import load_training_checkpoint
    from modalities.checkpointing.layout import read_progress, resolve_checkpoint
    from modalities.training.gym import restore_rng_state
    from modalities.training.run import TrainingProgress

    folder = resolve_checkpoint(plan.resume_from)
    saved_steps = int(read_progress(folder)["num_seen_steps"])
    if saved_steps >= plan.target:
        _nothing_to_train(f"{folder} is at step {saved_steps}", plan.target, plan.rank)
        return _Start(nothing_to_train=read_progress(folder))
    folder, saved, rank_state = load_training_checkpoint(folder, run.app_state)
    progress = TrainingProgress(
        num_seen_steps=saved["num_seen_steps"],
        num_seen_samples=saved["num_seen_samples"],
        global_num_seen_tokens=saved["global_num_seen_tokens"],
        train_batches_consumed=saved.get("train_batches_consumed", 0),
    )
    restore = _data_restorer(run.train_dataloader, rank_state, restore_rng_state, folder)
    if plan.rank == 0:
        print(f"resuming from {folder} after step {progress.num_seen_steps}", flush=True)
        if "saved_world_size" in rank_state:
            print(
                f"the checkpoint was saved by {rank_state['saved_world_size']} ranks and this run has "
                f"{dist.get_world_size()}: model and optimizer are resharded and the data continues at the next "
                "sample of the same order, but RNG streams start afresh, so the losses will not match an "
                "uninterrupted run bit for bit",
                flush=True,
            )
    return _Start(progress=progress, restore_rank_state=restore)


def _announce(run, plan: _Plan, start: _Start, config_text: str, config_values: dict | None, started: float):
    """Describe the run (every rank: the counts are reduced), hang the subscribers on a broker, and on rank 0
    open the experiment folder's results file and print the start banner; then tell every subscriber."""
    from modalities.checkpointing.layout import resolve_checkpoint
    from modalities.logging.broker import MessageBroker, MessageType
    from modalities.training.report import RunSummary, describe_run, format_banner

    info = describe_run(
        run,
        experiment_id=plan.experiment_id,
        experiment_folder=plan.experiment_folder,
        config_values=config_values if config_values is not None else {},
        config_text=config_text,
        device=plan.device,
        num_seen_steps=start.progress.num_seen_steps,
        num_seen_tokens=start.progress.global_num_seen_tokens,
        resumed_from=str(resolve_checkpoint(plan.resume_from)) if plan.resume_from is not None else None,
    )
    broker = MessageBroker()
    broker.add_subscriber(run.progress_subscriber, MessageType.PROGRESS, MessageType.RESULT)
    broker.add_subscriber(run.evaluation_subscriber, MessageType.RESULT)
    for subscriber in (run.progress_subscriber, run.evaluation_subscriber):
        # Only subscribers that say so get RUN_START: one written for Modalities expects results and progress.
        if getattr(subscriber, "receives_run_start", False):
            broker.add_subscriber(subscriber, MessageType.RUN_START)
    summary = RunSummary(plan.train_tag)
    if plan.rank == 0:
        _open_results_file(plan, start, info, broker, config_text, started)
        broker.add_subscriber(summary, MessageType.RESULT)
        print(format_banner(info), flush=True)
    broker.publish_run_start(info)
    return _Report(info=info, broker=broker, summary=summary)


def _open_results_file(plan: _Plan, start: _Start, info, broker, config_text: str, started: float) -> None:
    """The experiment folder with the resolved config, and its results file, continued with an event line
    where this run resumes or restarts after an earlier one (logging/results_file.py)."""
    from modalities.logging.broker import MessageType
    from modalities.logging.results_file import RESTART_EVENT, RESULTS_FILE, RESUME_EVENT
    from modalities.logging.subscribers import JSONLResultsWriter
    from modalities.training.experiment import prepare_experiment_folder

    prepare_experiment_folder(plan.experiments_root, plan.experiment_id, config_text)
    results = plan.experiment_folder / RESULTS_FILE
    had_results = results.is_file() and results.stat().st_size > 0
    writer = JSONLResultsWriter(results, started=started)
    if plan.resume_from is not None:
        writer.write_event(RESUME_EVENT, num_train_steps_done=start.progress.num_seen_steps,
                           checkpoint=info.resumed_from)
    elif had_results:
        writer.write_event(RESTART_EVENT, num_train_steps_done=0, checkpoint=None)
    broker.add_subscriber(writer, MessageType.RESULT)


def _loop(run, plan: _Plan, start: _Start, report: _Report, config_text: str, stop_signals):
    """The training loop to the target; returns (the final progress, the last checkpoint saved)."""
    from modalities.training.distributed import barrier
    from modalities.training.signals import TrainingStopped

    gym = _gym(run, plan, report.broker, config_text, stop_signals)
    try:
        final = gym.run(run.train_dataloader, list(run.eval_dataloaders or []), start.progress,
                        restore_rank_state=start.restore_rank_state)
    except TrainingStopped:
        barrier()  # every rank stopped after the same step; leave together
        raise
    finally:
        report.broker.close()
    return final, gym.last_checkpoint


def _gym(run, plan: _Plan, broker, config_text: str, stop_signals):
    from modalities.models.moe.statistics import MoEStatistics
    from modalities.training.context_parallel import context_parallel_mesh, load_balancer_of
    from modalities.training.device_mesh import data_parallel_degree
    from modalities.training.gym import Gym, LoopSettings

    settings = run.settings
    loop = LoopSettings(
        gradient_accumulation_steps=settings.step_profile.gradient_accumulation_steps,
        num_target_steps=plan.target,
        training_log_interval_in_steps=settings.intervals.training_log_interval_in_steps,
        evaluation_interval_in_steps=settings.intervals.evaluation_interval_in_steps,
        checkpointing_interval_in_steps=settings.intervals.checkpointing_interval_in_steps,
        train_dataloader_tag=plan.train_tag,
        extra_progress={
            "experiment_id": plan.experiment_id,
            "num_target_steps": plan.target,
            "num_target_tokens": settings.training_target.num_target_tokens,
        },
    )
    return Gym(
        app_state=run.app_state,
        loss_fn=run.loss_fn,
        gradient_clipper=run.gradient_clipper,
        device=plan.device,
        broker=broker,
        settings=loop,
        mfu_calculator=run.mfu_calculator,
        checkpoint_saving=run.checkpoint_saving,
        config_text=config_text,
        profiler=run.profiler,
        stop_signals=stop_signals,
        data_parallel_degree=data_parallel_degree(run.device_mesh),
        scheduled_pipeline=run.scheduled_pipeline,
        loss_parallel=getattr(run.device_mesh, "loss_parallel", False),
        context_parallel_mesh=context_parallel_mesh(run.device_mesh),
        context_parallel_load_balancer=load_balancer_of(run.app_state.model_parts),
        model_statistics=MoEStatistics.of(run.app_state.model_parts, run.device_mesh),
    )


def _finish(plan: _Plan, report: _Report, final, started: float, last_checkpoint) -> dict:
    import time

    from modalities.training.distributed import barrier

    barrier()  # finish together: a rank tearing gloo down early can abort a peer's background thread
    if plan.rank == 0:
        print(report.summary.format(report.info, final.as_dict(), time.time() - started, last_checkpoint), flush=True)
    return final.as_dict()


def _latest_checkpoint_of(checkpoint_saving, is_complete) -> Path | None:
    checkpoints_dir = getattr(checkpoint_saving, "checkpoints_dir", None)
    if checkpoints_dir is None:
        raise TrainingConfigError(
            "--resume auto needs a checkpoint_saving that keeps checkpoints in a folder (checkpoint_saving_execution/dcp)"
        )
    latest = Path(checkpoints_dir) / "latest"
    return latest if latest.exists() and is_complete(latest.resolve()) else None


def _nothing_to_train(where: str, target: int, rank: int) -> None:
    if rank == 0:
        print(f"{where}, and the target is {target} steps: nothing to train (raise "
              "settings.training_target.num_target_steps to train longer)", flush=True)


def _position_schedule(app_state, step: int, target: int, rank: int) -> None:
    """The one rule for every run, continued or not (optim/schedule_state.py): the config's schedule at the step
    the run starts from, a checkpoint's saved state only where it agrees; what differs is printed."""
    from modalities.optim.continuation import ScheduleError, continue_schedule

    try:
        report = continue_schedule(app_state.lr_scheduler, app_state.optimizer, step, target)
    except ScheduleError as e:
        raise TrainingConfigError(str(e)) from None
    if rank == 0 and report:
        print("continuing from a checkpoint:\n  " + "\n  ".join(report), flush=True)


def _data_restorer(train_loader, rank_state: dict, restore_rng_state, folder):
    """Positions the train data where the checkpoint left it, then restores the RNG states (last, since creating
    a data iterator draws from the torch RNG)."""
    from modalities.checkpointing.layout import CheckpointError

    def restore():
        loader_state = rank_state.get("train_dataloader")
        if loader_state is not None and hasattr(train_loader, "load_state_dict"):
            try:
                train_loader.load_state_dict(loader_state)
            except (ValueError, KeyError) as e:
                raise CheckpointError(f"{folder}: cannot resume the train data there: {e}") from e
            data_iterator = iter(train_loader)
        elif "saved_world_size" in rank_state:
            raise CheckpointError(
                f"{folder} was saved by {rank_state['saved_world_size']} ranks and this run has another number; "
                f"this train_dataloader ({type(train_loader).__name__}) keeps no position that could move to other "
                f"ranks, so resume with {rank_state['saved_world_size']} ranks"
            )
        else:
            data_iterator = iter(train_loader)
            for _ in range(rank_state.get("train_batches_consumed", 0)):
                next(data_iterator)
        if rank_state.get("rng") is not None:
            restore_rng_state(rank_state["rng"])
        return data_iterator

    return restore
