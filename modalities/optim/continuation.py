"""A continued run's schedule and optimizer hyperparameters, by the rule of optim/schedule_state.py.

Every path that loads a checkpoint into an optimizer (``app_state/dcp`` and ``--resume`` through AppState,
``optimizer/checkpointed`` and ``optimizer/fsdp1_checkpointed``) loads it inside ``config_hyperparameters_kept``:
the optimizer keeps the moments and step counts it read, its parameter groups get the config's values back, and
what the checkpoint said (its groups, its scheduler state) is recorded. Before the first step the executor calls
``continue_schedule``, which positions the config's scheduler at the run's starting step (or continues the saved
state where it agrees) and returns the differences to report. Between the two, ``show_saved_position`` lets the
built objects read as at the checkpoint's step (what a caller of the library who only builds sees), keeping what
was built for continue_schedule.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
import weakref
from typing import Any, Iterator

from modalities.optim.schedule_state import (
    GROUP_BOUND_KEYS,
    SavedSchedule,
    comparable_state,
    group_differences,
    kind_of,
    shown,
    state_differences,
)

_SAVED: weakref.WeakKeyDictionary[Any, SavedSchedule] = weakref.WeakKeyDictionary()
# The scheduler's state and the groups' values as built, where show_saved_position has moved them since.
_BUILT: weakref.WeakKeyDictionary[Any, tuple[dict, list[dict]]] = weakref.WeakKeyDictionary()
# Group values a scheduler moves at every step: not hyperparameters to compare.
_POSITIONED_GROUP_KEYS = frozenset({"lr", "betas", "momentum"})


class ScheduleError(ValueError):
    """The config's schedule cannot be followed from where the run starts (raised before the first step)."""


def group_values(optimizer) -> list[dict]:
    return [{key: copy.deepcopy(value) for key, value in group.items() if key != "params"}
            for group in optimizer.param_groups]


@contextlib.contextmanager
def config_hyperparameters_kept(optimizer, source: str, scheduler_state: dict | None = None,
                                step: int | None = None) -> Iterator[None]:
    """Load a checkpoint into ``optimizer`` inside the block: afterwards its parameter groups hold the values they
    held before (the config's: lr, betas, weight decay, a scheduler's bounds), and the checkpoint's values are
    recorded for continue_schedule, with ``scheduler_state`` (the checkpoint's, if it has one) and ``step``."""
    before = group_values(optimizer)
    yield
    saved = group_values(optimizer)
    for group, mine in zip(optimizer.param_groups, before, strict=True):  # the live groups: loading replaces them
        for key in [key for key in group if key != "params" and key not in mine]:
            del group[key]
        group.update(mine)
    _SAVED[optimizer] = SavedSchedule(source, scheduler_state, saved, step)


def saved_schedule(optimizer) -> SavedSchedule | None:
    return _SAVED.get(optimizer)


def continue_schedule(scheduler, optimizer, step: int, target: int) -> list[str]:
    """Position ``scheduler`` (the config's, as built) at ``step``, where the run starts, and check that it reaches
    ``target``. A saved state recorded for ``optimizer`` is continued instead where it agrees with the config's
    (same hyperparameters, saved at ``step``). Returns what differs from the checkpoint, to report. Raises
    ScheduleError if the schedule cannot be followed."""
    saved = _SAVED.pop(optimizer, None)
    built = _BUILT.pop(optimizer, None)
    if built is not None:  # show_saved_position moved it for a reader of the built objects: start from the config's
        _restore(scheduler, optimizer, built)
    report = _hyperparameter_report(scheduler, optimizer, saved)
    if scheduler is None:
        return report
    _check_length(scheduler, target)
    return _position(scheduler, optimizer, saved, step, report)


def show_saved_position(scheduler, optimizer) -> None:
    """Right after a checkpoint is loaded: the scheduler, and the lr of the optimizer's groups, where the
    checkpoint's step puts them by continue_schedule's rule, so that an app state built without a run reads as
    the reference's does (``get_last_lr()`` is the saved step's). What was built is kept aside: continue_schedule
    starts from it, at the run's own starting step, whatever the checkpoint's was."""
    saved = _SAVED.get(optimizer)
    if scheduler is None or saved is None or saved.scheduler_step is None:
        return
    built = (copy.deepcopy(scheduler.state_dict()), group_values(optimizer))
    try:
        _position(scheduler, optimizer, saved, saved.scheduler_step, [])
    except ScheduleError:  # reported by continue_schedule when a run starts
        _restore(scheduler, optimizer, built)
        return
    _BUILT[optimizer] = built


def _restore(scheduler, optimizer, built: tuple[dict, list[dict]]) -> None:
    state, groups = built
    scheduler.load_state_dict(copy.deepcopy(state))
    for group, values in zip(optimizer.param_groups, groups, strict=True):
        group.update(copy.deepcopy(values))


def _position(scheduler, optimizer, saved: SavedSchedule | None, step: int, report: list[str]) -> list[str]:
    config_state = comparable_state(scheduler.state_dict())
    differences = state_differences(config_state, comparable_state(saved.state)) if saved is not None and saved.state \
        else []
    bounds = group_differences(group_values(optimizer), saved.groups, GROUP_BOUND_KEYS) if saved is not None else []
    position = getattr(scheduler, "last_epoch", None)
    if saved is not None and saved.state and not differences and not bounds and saved.scheduler_step == step \
            and position is not None:
        scheduler.load_state_dict(saved.state)  # the same schedule where the run stands: continued exactly
        positioned = ("lr", "betas", "momentum") if getattr(scheduler, "cycle_momentum", False) else ("lr",)
        for group, theirs in zip(optimizer.param_groups, saved.groups):
            group.update({key: theirs[key] for key in positioned if key in theirs})
        return report
    kind = kind_of(saved.state) if saved is not None and saved.state else None
    if kind is not None and kind != type(scheduler).__name__:
        report.append(f"lr_scheduler: the checkpoint's is a {kind}, the config's a {type(scheduler).__name__}")
    else:
        report += [f"lr_scheduler {key}: the checkpoint's is {shown(theirs)}, the config's {shown(mine)}"
                   for key, theirs, mine in differences]
    if saved is not None and saved.scheduler_step is not None and saved.scheduler_step != step:
        report.append(f"lr_scheduler: the checkpoint's schedule stood at step {saved.scheduler_step}; this run starts "
                      f"at step {step}")
    _advance(scheduler, position, step)
    if report:
        report.append(f"the learning-rate schedule follows the config from step {step} on")
    return report


def _hyperparameter_report(scheduler, optimizer, saved: SavedSchedule | None) -> list[str]:
    if saved is None or not saved.groups:
        return []
    config = group_values(optimizer)
    keys = sorted({key for group in config + saved.groups for key in group} - _POSITIONED_GROUP_KEYS)
    if scheduler is None:
        keys = ["lr", *keys]  # without a scheduler the lr is a hyperparameter like the others
    return [f"optimizer {key}: the checkpoint's is {shown(theirs)}, the config's {shown(mine)} (the config's applies)"
            for key, theirs, mine in group_differences(config, saved.groups, keys)]


def _check_length(scheduler, target: int) -> None:
    """A schedule of a fixed length (OneCycleLR's total_steps) must reach the run's last step: torch raises past it."""
    total = getattr(scheduler, "total_steps", None)
    if type(scheduler).__name__ == "OneCycleLR" and isinstance(total, int) and total < target:
        raise ScheduleError(
            f"the lr_scheduler (OneCycleLR) has total_steps {total}, and the run trains to step {target}: torch "
            f"refuses to step it past step {total}; set its total_steps to the run's target "
            "(${settings.training_target.num_target_steps}) or lower the target"
        )


def _advance(scheduler, position: int | None, step: int) -> None:
    if position is None:
        return  # a scheduler that keeps no position: it runs from where it was built
    if position > step:
        raise ScheduleError(
            f"the lr_scheduler is built at step {position} (its last_epoch), past step {step}, where this run starts; "
            f"a schedule cannot go back: build it with last_epoch {step - 1} (the run's last step) or leave "
            "last_epoch out"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()": intended here
        try:
            for _ in range(step - position):
                scheduler.step()
        except ValueError as e:  # e.g. OneCycleLR past its total_steps
            raise ScheduleError(f"the lr_scheduler cannot reach step {step}, where this run starts: {e}") from None
