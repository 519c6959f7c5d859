"""The run contract's check of the learning-rate schedule, alone and against the checkpoint a run continues from.

The rule (optim/schedule_state.py): the schedule is the config's, from the step the run starts at; a checkpoint's
saved scheduler state is used only where it agrees. `validate` reads the checkpoint the run continues from (a
``--resume`` folder, an ``app_state/dcp`` folder, an ``optimizer/checkpointed`` folder or an
``optimizer/fsdp1_checkpointed`` file) as plain data, without torch, and

- refuses what cannot be honoured: a schedule of fixed length (OneCycleLR) shorter than the run, a scheduler
  built (``last_epoch``) past the step the run starts from;
- warns at each config field whose value differs from the checkpoint's, naming the checkpoint's value (the run
  follows the config), where the checkpoint's schedule stood at another step, and when nothing is left to train.

Values computed when the config is built (a target from a token count) are not known here: `train` checks them
before the first step (optim/continuation.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modalities.optim.schedule_state import (
    GROUP_BOUND_KEYS,
    SavedSchedule,
    comparable_group,
    comparable_state,
    expected_schedule,
    group_differences,
    kind_of,
    onecycle_total_steps,
    same_value,
    shown,
)
from modalities.registry.types import Finding, NodeInfo
from modalities.training.contract.parts import WARNING, RunParts, finding, known_int

_SCHEDULER_PREFIX = "app.lr_scheduler."
_GROUPS_PREFIX = "app.optimizer.param_groups."


@dataclass
class _Schedule:
    scheduler: NodeInfo | None
    optimizer: NodeInfo | None  # the node that holds the lr
    saved: SavedSchedule | None
    saved_at: tuple  # the config field that names the checkpoint (where a problem with it is reported)


def learning_rate_schedule(parts: RunParts) -> Iterator[Finding]:
    """The schedule alone and against the checkpoint the run continues from (``--resume``, which the compiler
    puts on the view) or warm-starts from (see above)."""
    resume_from = getattr(parts.view, "resume_from", None)
    schedule = _schedule_of(parts, resume_from)
    if schedule.scheduler is None or schedule.scheduler.config is None:
        return
    settings = parts.run.settings
    target = known_int(settings.training_target.num_target_steps)
    start = _start_step(settings, schedule.saved, resume_from)
    yield from _check_length(parts, schedule.scheduler, target)
    if start is not None and target is not None and start >= target:
        yield finding(("settings", "training_target", "num_target_steps"),
                      f"the run starts after step {start} and its target is {target} steps: nothing to train",
                      WARNING, hint="raise the target to train on")
        return
    yield from _check_position(parts, schedule.scheduler, start)
    if schedule.saved is not None and start is not None:
        yield from _compare_with_checkpoint(parts, schedule, start)


def _schedule_of(parts: RunParts, resume_from: Any) -> _Schedule:
    app_state = parts.node(getattr(parts.run, "app_state", None))
    saved, saved_at = None, ()
    if app_state is not None and app_state.variant_key == "dcp" and app_state.config is not None:
        folder = parts.field(app_state, "checkpoint_dir_path")
        saved, saved_at = _read_folder(folder), parts.at(app_state, "checkpoint_dir_path")
        app_state = parts.node(getattr(app_state.config, "raw_app_state", None))
    scheduler = parts.node(getattr(app_state.config, "lr_scheduler", None)) if app_state and app_state.config else None
    optimizer_ref = getattr(scheduler.config, "optimizer", None) if scheduler and scheduler.config else None
    if optimizer_ref is None and app_state is not None and app_state.config is not None:
        optimizer_ref = getattr(app_state.config, "optimizer", None)
    optimizer = None
    for info in parts.chain(optimizer_ref, ("optimizer",)):
        if info.variant_key in ("checkpointed", "fsdp1_checkpointed") and saved is None:
            path = parts.field(info, "checkpoint_path")
            saved = _read_folder(path) if info.variant_key == "checkpointed" else _read_optimizer_file(path)
            saved_at = parts.at(info, "checkpoint_path")
        if optimizer is None and isinstance(parts.field(info, "lr"), (int, float)):
            optimizer = info
    if resume_from is not None:  # a resume loads the whole app state from its folder, whatever else the config says
        saved, saved_at = _read_folder(_resumed_folder(parts, resume_from)), ()
    return _Schedule(scheduler, optimizer, saved, saved_at)


def _resumed_folder(parts: RunParts, resume_from: Any) -> Any:
    if resume_from != "auto":
        return resume_from
    saving = parts.node(getattr(parts.run, "checkpoint_saving", None))
    execution = parts.node(getattr(saving.config, "checkpoint_saving_execution", None)) if saving and saving.config \
        else None
    root, experiment = parts.field(execution, "checkpoint_path"), parts.field(execution, "experiment_id")
    if execution is None or execution.variant_key != "dcp" or not isinstance(root, str) \
            or not isinstance(experiment, str):
        return None
    return Path(root) / experiment / "checkpoints" / "latest"


def _read_folder(path: Any) -> SavedSchedule | None:
    """A DCP checkpoint folder's schedule, as plain data; None where there is none to read (a missing folder is
    reported where it is loaded)."""
    from modalities.checkpointing.layout import CheckpointError, read_progress, resolve_checkpoint
    from modalities.checkpointing.plain_entries import by_parameter, nest, read_plain_entries

    if not isinstance(path, (str, Path)) or not path:
        return None
    try:
        folder = resolve_checkpoint(path, require_progress=False)
        state = nest(read_plain_entries(folder, (_SCHEDULER_PREFIX,)), _SCHEDULER_PREFIX)
        bounds = read_plain_entries(folder, (_GROUPS_PREFIX,), tuple(f".{key}" for key in GROUP_BOUND_KEYS))
    except (CheckpointError, OSError, ValueError):
        return None
    groups = list(by_parameter(bounds, _GROUPS_PREFIX).values())
    try:
        step = known_int(read_progress(folder).get("num_seen_steps"))
    except CheckpointError:
        step = None
    return SavedSchedule(str(folder), state or None, groups, step)


def _read_optimizer_file(path: Any) -> SavedSchedule | None:
    import re

    from modalities.checkpointing.plain_entries import read_optimizer_param_groups

    if not isinstance(path, str) or not os.path.isfile(path):  # False also for a name the system refuses
        return None
    groups = read_optimizer_param_groups(path)
    steps = re.findall(r"seen_steps_(\d+)", Path(path).name)
    return SavedSchedule(path, None, groups or [], int(steps[0]) if len(steps) == 1 else None) if groups else None


def _start_step(settings, saved: SavedSchedule | None, resume_from: Any) -> int | None:
    """The step the run starts from: a resumed checkpoint's; else the settings' progress, or (computed from the
    checkpoint when built, as the reference's warm starts do) the checkpoint's."""
    if resume_from is not None:
        return saved.step if saved is not None else None
    configured = known_int(settings.training_progress.num_seen_steps)
    return configured if configured is not None else (saved.scheduler_step if saved is not None else None)


def _check_length(parts: RunParts, scheduler: NodeInfo, target: int | None) -> Iterator[Finding]:
    if scheduler.variant_key != "onecycle_lr" or target is None:
        return
    total = onecycle_total_steps(scheduler.config)
    if total is not None and total < target:
        field = "total_steps" if known_int(getattr(scheduler.config, "total_steps", None)) is not None else "epochs"
        yield finding(parts.at(scheduler, field),
                      f"OneCycleLR's schedule is {total} steps long, and the run trains to step {target} "
                      f"({parts.where(('settings', 'training_target', 'num_target_steps'))}): torch refuses to step it "
                      f"past step {total}",
                      hint="set total_steps: ${settings.training_target.num_target_steps}, or lower the target")


def _check_position(parts: RunParts, scheduler: NodeInfo, start: int | None) -> Iterator[Finding]:
    last_epoch = known_int(parts.field(scheduler, "last_epoch"))
    if last_epoch is not None and start is not None and last_epoch + 1 > start:
        yield finding(parts.at(scheduler, "last_epoch"),
                      f"the scheduler is built after step {last_epoch + 1} (last_epoch {last_epoch}), past step {start}, "
                      "where the run starts: a schedule cannot go back",
                      hint=f"last_epoch: {start - 1} (${{settings.training_progress.last_step}}), or leave it out")


def _compare_with_checkpoint(parts: RunParts, schedule: _Schedule, start: int) -> Iterator[Finding]:
    saved, scheduler = schedule.saved, schedule.scheduler
    expected = expected_schedule(scheduler.variant_key, scheduler.config, parts.field(schedule.optimizer, "lr"))
    if expected is None:
        return  # a scheduler of one's own: `train` compares the states when it starts
    state, groups, fields = expected
    where = f"{saved.source}{f' (saved at step {saved.scheduler_step})' if saved.scheduler_step is not None else ''}"
    follows = f"this run follows the config's schedule from step {start} on"
    if saved.state is not None and state and not set(state) & set(comparable_state(saved.state)):
        kind = kind_of(saved.state)
        yield finding(scheduler.path + ("variant_key",),
                      f"the checkpoint {where} holds the state of another kind of scheduler"
                      f"{f' ({kind})' if kind else ''}; {follows}", WARNING)
        return
    theirs = comparable_state(saved.state or {})
    differences = [(key, theirs[key], mine) for key, mine in state.items()
                   if key in theirs and not same_value(mine, theirs[key])]
    differences += group_differences([groups], [comparable_group(g) for g in saved.groups], list(groups))
    for key, their_value, my_value in differences:
        field = fields[key]
        if field == "optimizer.lr":
            at = parts.at(schedule.optimizer, "lr") if schedule.optimizer is not None else scheduler.path
        else:
            at = parts.at(scheduler, field)
        name = field.rpartition(".")[2] if key in groups else key
        yield finding(at, f"the checkpoint {where} has {name} {shown(their_value)}, the config {shown(my_value)}: "
                      f"{follows}", WARNING)
    if saved.scheduler_step is not None and saved.scheduler_step != start:
        yield finding(schedule.saved_at or ("settings", "training_progress", "num_seen_steps"),
                      f"the checkpoint's schedule stood at step {saved.scheduler_step}, and the run starts at step "
                      f"{start}: the schedule starts from step {start} as the config describes it", WARNING)
