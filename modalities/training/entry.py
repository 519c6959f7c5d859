"""`run_training(main)`: from a validated config to a finished (or resumed) training run.

Order matters: the settings and the device are checked before the process group starts; the process group
starts before anything is built (the device mesh needs it); a checkpoint is loaded after everything is built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from modalities.training.config import TrainingSettings

REQUIRED_KEYS = (
    "settings",
    "app_state",
    "loss_fn",
    "train_dataloader",
    "eval_dataloaders",
    "checkpoint_saving",
    "gradient_clipper",
    "progress_subscriber",
    "evaluation_subscriber",
)


class TrainingConfigError(ValueError):
    pass


def check_training_config(config: dict[str, Any]) -> None:
    missing = [key for key in REQUIRED_KEYS if key not in config]
    if missing:
        raise TrainingConfigError(
            "a training config needs the top-level key(s) "
            + ", ".join(f"'{key}'" for key in missing)
            + " (see configs/quickstart.yaml for a complete training config)"
        )


def _plain_settings(settings: Any) -> dict:
    if not isinstance(settings, dict):
        raise TrainingConfigError("settings: expected a mapping")
    return settings


def parse_settings(settings: dict) -> TrainingSettings:
    try:
        return TrainingSettings.model_validate(settings)
    except ValidationError as e:
        lines = []
        for error in e.errors():
            where = ".".join(str(p) for p in ("settings", *error["loc"]))
            lines.append(f"{where}: {error['msg']}")
        raise TrainingConfigError("invalid training settings:\n  " + "\n  ".join(lines)) from None


def device_type_of(config: dict) -> str:
    mesh = config.get("device_mesh")
    if isinstance(mesh, dict) and isinstance(mesh.get("config"), dict) and "device_type" in mesh["config"]:
        return mesh["config"]["device_type"]
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


AUTO = "auto"  # --resume auto: the experiment's latest complete checkpoint if there is one, else a fresh start


def run_training(main, resume_from: str | os.PathLike | None = None) -> dict:
    """Train with the components of ``main``'s config; returns the final training progress.

    ``resume_from``: a checkpoint to continue from, or "auto" (this experiment's latest complete checkpoint, or
    a fresh start without one: what a requeued job wants). A stop signal ends the run after a checkpoint of the
    step it reached (raising TrainingStopped; see training/signals.py)."""
    import warnings

    # Initializing a sharded model on a CPU mesh draws random numbers through DTensor, which torch warns is
    # not fully supported there; our init is per-shard and seeded, so the warning says nothing actionable.
    warnings.filterwarnings("ignore", message="DTensor random operators may not have complete support")
    config = main.config_dict
    check_training_config(config)
    device_type = device_type_of(config)

    import torch.distributed as dist

    from modalities.checkpointing.dcp import load_training_checkpoint
    from modalities.checkpointing.layout import is_complete, read_progress, resolve_checkpoint
    from modalities.logging.broker import MessageBroker, MessageType
    from modalities.logging.subscribers import JSONLResultsWriter
    from modalities.training.distributed import (
        barrier,
        check_device_available,
        destroy_process_group,
        ensure_process_group,
        local_device,
    )
    from modalities.training.experiment import RESULTS_FILE, prepare_experiment_folder
    from modalities.training.gym import Gym, LoopSettings, TrainingProgress, restore_rng_state
    from modalities.training.signals import StopSignals, TrainingStopped

    check_device_available(device_type)
    ensure_process_group(device_type)
    claim = None
    try:
        with StopSignals() as stop_signals:
            agree_on_experiment_id(main)
            claim = _claim_experiment_folder(main)
            if resume_from != AUTO:
                _refuse_to_overwrite_a_run(main, resume_from)
            components = main.build_components()
            built_settings = components.get("settings")
            settings = parse_settings(
                _plain_settings(built_settings if isinstance(built_settings, dict) else config["settings"])
            )
            rank = dist.get_rank()
            device = local_device(device_type)
            app_state = components["app_state"]
            train_loader = components["train_dataloader"]
            eval_loaders = list(components["eval_dataloaders"] or [])
            target = settings.training_target.num_target_steps

            if resume_from == AUTO:
                resume_from = _latest_checkpoint_of(components["checkpoint_saving"], is_complete)
                if rank == 0:
                    print(
                        f"--resume auto: {'resuming from ' + str(resume_from) if resume_from else 'no complete checkpoint of this experiment yet; starting from the beginning'}",
                        flush=True,
                    )

            progress = TrainingProgress(
                num_seen_steps=settings.training_progress.num_seen_steps,
                num_seen_samples=settings.training_progress.num_seen_samples,
                global_num_seen_tokens=settings.training_progress.global_num_seen_tokens,
            )
            restore = None
            if resume_from is not None:
                folder = resolve_checkpoint(resume_from)
                saved_steps = int(read_progress(folder)["num_seen_steps"])
                if saved_steps >= target:
                    if rank == 0:
                        print(
                            f"{folder} is at step {saved_steps}, and the target is {target} steps: nothing to "
                            "train (raise settings.training_target.num_target_steps to train longer)",
                            flush=True,
                        )
                    return read_progress(folder)
                # The schedule comes from the config, advanced to the saved step, not from the checkpoint: a
                # changed target (or schedule) then takes effect from that step on; unchanged, the learning rates
                # are those of an uninterrupted run, bit for bit.
                _advance_scheduler(app_state.lr_scheduler, saved_steps)
                app_state.restore_lr_scheduler = False
                folder, saved, rank_state = load_training_checkpoint(folder, app_state)
                _apply_scheduler_lr(app_state)
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
                            f"{dist.get_world_size()}: model and optimizer are resharded and the data continues at "
                            "the next sample of the same order, but RNG streams start afresh, so the losses will "
                            "not match an uninterrupted run bit for bit",
                            flush=True,
                        )

            experiment_id = str(getattr(main, "experiment_id", None) or settings.experiment_id or "experiment")
            experiments_root = Path(getattr(main, "experiments_root", None) or "experiments")
            broker = MessageBroker()
            broker.add_subscriber(components["progress_subscriber"], MessageType.PROGRESS, MessageType.RESULT)
            broker.add_subscriber(components["evaluation_subscriber"], MessageType.RESULT)
            if rank == 0:
                experiment_folder = prepare_experiment_folder(experiments_root, experiment_id, config)
                results = experiment_folder / RESULTS_FILE
                had_results = results.is_file() and results.stat().st_size > 0
                writer = JSONLResultsWriter(results)
                if resume_from is not None:
                    writer.write_event(
                        "resume",
                        num_train_steps_done=progress.num_seen_steps,
                        checkpoint=str(resolve_checkpoint(resume_from)),
                    )
                elif had_results:
                    writer.write_event("restart", num_train_steps_done=0, checkpoint=None)
                broker.add_subscriber(writer, MessageType.RESULT)

            loop = LoopSettings(
                gradient_accumulation_steps=settings.step_profile.gradient_accumulation_steps,
                num_target_steps=target,
                training_log_interval_in_steps=settings.intervals.training_log_interval_in_steps,
                evaluation_interval_in_steps=settings.intervals.evaluation_interval_in_steps,
                checkpointing_interval_in_steps=settings.intervals.checkpointing_interval_in_steps,
                train_dataloader_tag=getattr(train_loader, "dataloader_tag", None) or "train",
                extra_progress={
                    "experiment_id": experiment_id,
                    "num_target_steps": target,
                    "num_target_tokens": settings.training_target.num_target_tokens,
                },
            )
            gym = Gym(
                app_state=app_state,
                loss_fn=components["loss_fn"],
                gradient_clipper=components["gradient_clipper"],
                device=device,
                broker=broker,
                settings=loop,
                mfu_calculator=components.get("mfu_calculator"),
                checkpoint_saving=components["checkpoint_saving"],
                config_dict=config,
                profiler=components.get("profiler"),
                stop_signals=stop_signals,
            )
            try:
                final = gym.run(train_loader, eval_loaders, progress, restore_rank_state=restore)
            except TrainingStopped:
                barrier()  # every rank stopped after the same step; leave together
                raise
            finally:
                broker.close()
            barrier()  # finish together: a rank tearing gloo down early can abort a peer's background thread
            return final.as_dict()
    finally:
        if claim is not None:
            claim.release()
        destroy_process_group()


def _latest_checkpoint_of(checkpoint_saving, is_complete) -> Path | None:
    checkpoints_dir = getattr(checkpoint_saving, "checkpoints_dir", None)
    if checkpoints_dir is None:
        raise TrainingConfigError(
            "--resume auto needs a checkpoint_saving that keeps checkpoints in a folder (checkpoint_saving_execution/dcp)"
        )
    latest = Path(checkpoints_dir) / "latest"
    return latest if latest.exists() and is_complete(latest.resolve()) else None


def _advance_scheduler(scheduler, steps: int) -> None:
    """Step a freshly built scheduler to where the run is (its optimizer's learning rates follow)."""
    import warnings

    if scheduler is None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()": intended here
        try:
            for _ in range(steps):
                scheduler.step()
        except ValueError as e:  # e.g. OneCycleLR past its total_steps
            raise TrainingConfigError(
                f"the lr_scheduler of this config cannot reach step {steps}, where the checkpoint is: {e}"
            ) from None


def _apply_scheduler_lr(app_state) -> None:
    """After the optimizer state is loaded (which brings the saved learning rates), give each group the rate the
    config's schedule has at this step."""
    scheduler = app_state.lr_scheduler
    if scheduler is None or not hasattr(scheduler, "get_last_lr"):
        return
    for group, lr in zip(app_state.optimizer.param_groups, scheduler.get_last_lr()):
        group["lr"] = lr


def _claim_experiment_folder(main):
    """Rank 0 holds the experiment folder for the run; a second run with the same experiment id stops here,
    before building anything (every rank: the answer is broadcast)."""
    import torch.distributed as dist

    from modalities.training.experiment import ExperimentClaim, ExperimentInUse

    settings = main.config_dict.get("settings")
    experiment_id = main.experiment_id or (settings.get("experiment_id") if isinstance(settings, dict) else None)
    claim, problem = None, None
    if dist.get_rank() == 0 and experiment_id:
        try:
            claim = ExperimentClaim(Path(main.experiments_root or "experiments") / str(experiment_id))
        except ExperimentInUse as e:
            problem = str(e)
    box = [problem]
    if dist.get_world_size() > 1:
        dist.broadcast_object_list(box, src=0)
    if box[0]:
        raise TrainingConfigError(box[0])
    return claim


def _refuse_to_overwrite_a_run(main, resume_from) -> None:
    """A fresh run must not append to another run's results nor overwrite its checkpoints; a resume may."""
    import torch.distributed as dist

    from modalities.training.experiment import existing_run_in

    settings = main.config_dict.get("settings")
    experiment_id = main.experiment_id or (settings.get("experiment_id") if isinstance(settings, dict) else None)
    existing = None
    if resume_from is None and dist.get_rank() == 0 and experiment_id:
        existing = existing_run_in(Path(main.experiments_root or "experiments"), str(experiment_id))
    box = [str(existing) if existing else None]
    if dist.get_world_size() > 1:
        dist.broadcast_object_list(box, src=0)  # every rank stops, not just rank 0
    if box[0]:
        raise TrainingConfigError(
            f"experiment '{experiment_id}' already has a run ({box[0]}); choose another --experiment-id, "
            "or continue it with --resume <its checkpoint>"
        )


def agree_on_experiment_id(main) -> None:
    """Make every rank use rank 0's experiment id.

    Without MODALITIES_EXPERIMENT_ID each rank resolved ``${modalities_env:experiment_id}`` to its own
    timestamp, and ranks that loaded the config in different seconds disagree. A timestamp is distinctive, so
    this rank's is replaced by rank 0's wherever it was interpolated (experiment folder, checkpoint path, ...).
    """
    import torch.distributed as dist

    settings = main.config_dict.get("settings")
    own = main.experiment_id or (settings.get("experiment_id") if isinstance(settings, dict) else None)
    if dist.get_world_size() == 1:
        return
    box = [own]
    dist.broadcast_object_list(box, src=0)
    shared = box[0]
    if shared == own:
        return
    if own:
        for key, value in main.config_dict.items():
            main.config_dict[key] = _replace_in_strings(value, own, shared)
        main.forget_compilation()
    main.experiment_id = shared


def _replace_in_strings(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {k: _replace_in_strings(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_in_strings(v, old, new) for v in value]
    return value


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
