"""The executor: ``run_training(run, ...)`` trains with the built, typed parts of a training run.

It receives a ``TrainingRunConfig`` (training/run.py) whose component fields hold built objects and whose
settings are validated, plus where to write; it never reads a config file and never calls back into the
compiler. ``modalities.api.train_compiled`` gets it there: compile (with the training contract), start the
process group, claim the experiment folder, build, then call this.
"""

from __future__ import annotations

import os
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
    TensorBoard and W&B receive). Rank 0 prints a start banner and an end summary. A stop signal ends the run after a checkpoint of the step it
    reached (TrainingStopped; see training/signals.py)."""
    import time

    import torch.distributed as dist

    from modalities.checkpointing.dcp import load_training_checkpoint
    from modalities.checkpointing.layout import is_complete, read_progress, resolve_checkpoint
    from modalities.logging.broker import MessageBroker, MessageType
    from modalities.logging.results_file import RESTART_EVENT, RESULTS_FILE, RESUME_EVENT
    from modalities.logging.subscribers import JSONLResultsWriter
    from modalities.models.moe.statistics import MoEStatistics
    from modalities.training.context_parallel import context_parallel_mesh, load_balancer_of
    from modalities.training.device_mesh import data_parallel_degree
    from modalities.training.distributed import barrier, local_device
    from modalities.training.experiment import prepare_experiment_folder
    from modalities.training.gym import Gym, LoopSettings, restore_rng_state
    from modalities.training.report import RunSummary, describe_run, format_banner
    from modalities.training.run import TrainingProgress
    from modalities.training.signals import TrainingStopped

    started = time.time()
    settings = run.settings
    rank = dist.get_rank()
    device = local_device(device_type)
    app_state = run.app_state
    train_loader = run.train_dataloader
    eval_loaders = list(run.eval_dataloaders or [])
    target = settings.training_target.num_target_steps

    if resume_from == AUTO:
        resume_from = _latest_checkpoint_of(run.checkpoint_saving, is_complete)
        if rank == 0:
            found = (
                f"resuming from {resume_from}"
                if resume_from
                else ("no complete checkpoint of this experiment yet; starting from the beginning")
            )
            print(f"--resume auto: {found}", flush=True)

    seen = settings.training_progress
    progress = TrainingProgress(
        num_seen_steps=seen.num_seen_steps,
        num_seen_samples=seen.num_seen_samples,
        global_num_seen_tokens=seen.global_num_seen_tokens,
    )
    restore = None
    if resume_from is not None:
        folder = resolve_checkpoint(resume_from)
        saved_steps = int(read_progress(folder)["num_seen_steps"])
        if saved_steps >= target:
            _nothing_to_train(f"{folder} is at step {saved_steps}", target, rank)
            return read_progress(folder)
        folder, saved, rank_state = load_training_checkpoint(folder, app_state)
        progress = TrainingProgress(
            num_seen_steps=saved["num_seen_steps"],
            num_seen_samples=saved["num_seen_samples"],
            global_num_seen_tokens=saved["global_num_seen_tokens"],
            train_batches_consumed=saved.get("train_batches_consumed", 0),
        )
        restore = _data_restorer(train_loader, rank_state, restore_rng_state, folder)
        if rank == 0:
            print(f"resuming from {folder} after step {progress.num_seen_steps}", flush=True)
            if "saved_world_size" in rank_state:
                print(
                    f"the checkpoint was saved by {rank_state['saved_world_size']} ranks and this run has "
                    f"{dist.get_world_size()}: model and optimizer are resharded and the data continues at the next "
                    "sample of the same order, but RNG streams start afresh, so the losses will not match an "
                    "uninterrupted run bit for bit",
                    flush=True,
                )
    elif progress.num_seen_steps >= target:  # a warm start (settings.training_progress) at or past the target
        _nothing_to_train(f"the run starts after step {progress.num_seen_steps}", target, rank)
        return progress.as_dict()
    _position_schedule(app_state, progress.num_seen_steps, target, rank)

    train_tag = getattr(train_loader, "dataloader_tag", None) or "train"
    experiment_folder = Path(experiments_root) / experiment_id
    info = describe_run(
        run,
        experiment_id=experiment_id,
        experiment_folder=experiment_folder,
        config_values=config_values if config_values is not None else {},
        config_text=config_text,
        device=device,
        num_seen_steps=progress.num_seen_steps,
        num_seen_tokens=progress.global_num_seen_tokens,
        resumed_from=str(resolve_checkpoint(resume_from)) if resume_from is not None else None,
    )
    broker = MessageBroker()
    broker.add_subscriber(run.progress_subscriber, MessageType.PROGRESS, MessageType.RESULT)
    broker.add_subscriber(run.evaluation_subscriber, MessageType.RESULT)
    for subscriber in (run.progress_subscriber, run.evaluation_subscriber):
        # Only subscribers that say so get RUN_START: one written for Modalities expects results and progress.
        if getattr(subscriber, "receives_run_start", False):
            broker.add_subscriber(subscriber, MessageType.RUN_START)
    summary = RunSummary(train_tag)
    if rank == 0:
        prepare_experiment_folder(Path(experiments_root), experiment_id, config_text)
        results = experiment_folder / RESULTS_FILE
        had_results = results.is_file() and results.stat().st_size > 0
        writer = JSONLResultsWriter(results, started=started)
        if resume_from is not None:
            writer.write_event(RESUME_EVENT, num_train_steps_done=progress.num_seen_steps, checkpoint=info.resumed_from)
        elif had_results:
            writer.write_event(RESTART_EVENT, num_train_steps_done=0, checkpoint=None)
        broker.add_subscriber(writer, MessageType.RESULT)
        broker.add_subscriber(summary, MessageType.RESULT)
        print(format_banner(info), flush=True)
    broker.publish_run_start(info)

    loop = LoopSettings(
        gradient_accumulation_steps=settings.step_profile.gradient_accumulation_steps,
        num_target_steps=target,
        training_log_interval_in_steps=settings.intervals.training_log_interval_in_steps,
        evaluation_interval_in_steps=settings.intervals.evaluation_interval_in_steps,
        checkpointing_interval_in_steps=settings.intervals.checkpointing_interval_in_steps,
        train_dataloader_tag=train_tag,
        extra_progress={
            "experiment_id": experiment_id,
            "num_target_steps": target,
            "num_target_tokens": settings.training_target.num_target_tokens,
        },
    )
    gym = Gym(
        app_state=app_state,
        loss_fn=run.loss_fn,
        gradient_clipper=run.gradient_clipper,
        device=device,
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
        context_parallel_load_balancer=load_balancer_of(app_state.model_parts),
        model_statistics=MoEStatistics.of(app_state.model_parts, run.device_mesh),
    )
    try:
        final = gym.run(train_loader, eval_loaders, progress, restore_rank_state=restore)
    except TrainingStopped:
        barrier()  # every rank stopped after the same step; leave together
        raise
    finally:
        broker.close()
    barrier()  # finish together: a rank tearing gloo down early can abort a peer's background thread
    if rank == 0:
        print(summary.format(info, final.as_dict(), time.time() - started, gym.last_checkpoint), flush=True)
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
