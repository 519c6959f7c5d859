"""What a learning-rate schedule is, apart from where it stands, as plain data (torch-free: `validate` uses it).

A run that continues from a checkpoint (``--resume``, ``--resume auto``, a warm start through ``app_state/dcp``,
an ``optimizer/*checkpointed`` or ``model/*checkpointed`` component) follows one rule for its schedule:

- the schedule is the config's, positioned at the step the run starts from;
- a saved scheduler state is used only where it agrees with it: same kind, same hyperparameters (lengths,
  factors, bounds, base learning rates) and saved at that step; then the run continues it exactly;
- every difference is reported (`validate` warns at the config field, naming the checkpoint's value; `train`
  prints it when it starts), and a combination that cannot be honoured (a schedule too short for the run,
  a scheduler built past the starting step) is refused before anything trains.

The optimizer's hyperparameters (its parameter groups' lr, betas, weight decay, ... and the bounds a scheduler
keeps there) follow the config the same way; a checkpoint brings the weights, the optimizer's moments and step
counts, and where the schedule stood.

A scheduler's state (``state_dict()``) mixes its hyperparameters with its position; POSITION_KEYS are the latter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

POSITION_KEYS = frozenset(
    {"last_epoch", "_step_count", "_last_lr", "_get_lr_called_within_step", "_is_initial", "verbose"}
)
# What a scheduler keeps in each parameter group besides the lr it sets (OneCycleLR's bounds and momenta; every
# torch scheduler's initial_lr, the base it scales).
GROUP_BOUND_KEYS = ("initial_lr", "max_lr", "min_lr", "base_momentum", "max_momentum")
_MISSING = object()


@dataclass
class SavedSchedule:
    """What a checkpoint says of the schedule it was saved with. ``state``: the scheduler's state_dict (None when
    the checkpoint holds none, as the reference's FSDP1 files); ``groups``: each parameter group's values (lr,
    bounds, hyperparameters) as saved; ``step``: the steps done when it was saved, where known."""

    source: str
    state: dict | None = None
    groups: list[dict] = field(default_factory=list)
    step: int | None = None

    @property
    def scheduler_step(self) -> int | None:
        epoch = (self.state or {}).get("last_epoch")
        return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else self.step


def same_value(a: Any, b: Any) -> bool:
    """Equal as plain data, floats within a relative 1e-9 (a value that went through a division elsewhere)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return a == b


def state_differences(config: dict, saved: dict, only: set | None = None) -> list[tuple[str, Any, Any]]:
    """(key, saved value, config value) for each hyperparameter where a saved scheduler state and the config's
    differ (``_MISSING``-free: an absent key is reported as None). ``only``: compare these keys alone."""
    keys = (set(config) | set(saved)) - POSITION_KEYS if only is None else set(only)
    differences = []
    for key in sorted(keys, key=str):
        mine, theirs = config.get(key, _MISSING), saved.get(key, _MISSING)
        if mine is _MISSING and only is not None:
            continue
        if not same_value(mine, theirs):
            differences.append((key, None if theirs is _MISSING else theirs, None if mine is _MISSING else mine))
    return differences


def distinct(values: list) -> list:
    found: list = []
    for value in values:
        if not any(same_value(value, seen) for seen in found):
            found.append(value)
    return found


def group_differences(config: list[dict], saved: list[dict], keys) -> list[tuple[str, Any, Any]]:
    """(key, saved value(s), config value(s)) for each of ``keys`` whose values over the parameter groups differ
    between the checkpoint and the config (one value, or the distinct ones when groups differ)."""
    differences = []
    for key in keys:
        mine = distinct([group[key] for group in config if key in group])
        theirs = distinct([group[key] for group in saved if key in group])
        if mine and theirs and not same_value(mine, theirs):
            differences.append((key, theirs[0] if len(theirs) == 1 else theirs, mine[0] if len(mine) == 1 else mine))
    return differences


def shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)) and len(value) > 4:
        return f"[{', '.join(map(shown, value[:4]))}, ... ({len(value)} values)]"
    if isinstance(value, (list, tuple)):
        return f"[{', '.join(map(shown, value))}]"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- what a config's scheduler will hold, for `validate` (torch's state_dict names by the config's fields) ------


def onecycle_total_steps(config: Any) -> int | None:
    total = getattr(config, "total_steps", None)
    if isinstance(total, int):
        return total
    epochs, per_epoch = getattr(config, "epochs", None), getattr(config, "steps_per_epoch", None)
    return epochs * per_epoch if isinstance(epochs, int) and isinstance(per_epoch, int) else None


def _onecycle(config: Any) -> tuple[dict, dict, dict]:
    total = onecycle_total_steps(config)
    state: dict[str, Any] = {"_anneal_func_type": config.anneal_strategy, "cycle_momentum": config.cycle_momentum}
    fields = {"_anneal_func_type": "anneal_strategy", "cycle_momentum": "cycle_momentum"}
    groups: dict[str, Any] = {}
    if total is not None:
        state["total_steps"] = total
        fields["total_steps"] = "total_steps" if isinstance(config.total_steps, int) else "epochs"
        state["pct_start"], state["three_phase"] = config.pct_start, config.three_phase
        fields["pct_start"], fields["three_phase"] = "pct_start", "three_phase"
    if isinstance(config.max_lr, (int, float)):
        groups.update({"max_lr": config.max_lr, "div_factor": config.div_factor,
                       "final_div_factor": config.final_div_factor})
        fields.update({"max_lr": "max_lr", "div_factor": "div_factor", "final_div_factor": "final_div_factor"})
    if config.cycle_momentum:
        for key in ("base_momentum", "max_momentum"):
            value = getattr(config, key)
            if isinstance(value, (int, float)):
                groups[key], fields[key] = value, key
    return state, groups, fields


# variant -> {state key: config field}, for the schedulers whose state names a field directly
_DIRECT = {
    "step_lr": {"step_size": "step_size", "gamma": "gamma"},
    "constant_lr": {"factor": "factor", "total_iters": "total_iters"},
    "linear_lr": {"start_factor": "start_factor", "end_factor": "end_factor", "total_iters": "total_iters"},
    "cosine_annealing_lr": {"T_max": "t_max", "eta_min": "eta_min"},
    "linear_warmup_cosine_annealing_lr": {
        "warmup_steps": "warmup_steps", "total_steps": "total_steps", "warmup_initial_lr": "initial_lr",
        "final_lr": "final_lr",
    },
    "dummy_lr": {},
}


def expected_schedule(variant: str, config: Any, optimizer_lr: Any) -> tuple[dict, dict, dict] | None:
    """What a scheduler of ``variant`` built from ``config`` holds, by the names its state and the parameter
    groups use: (state, group values, {name: the config field that sets it, "optimizer.lr" for the optimizer's
    lr}). Only what the config decides is listed. None for a variant not known here (a custom one)."""
    if variant == "onecycle_lr":
        return _onecycle(config)
    if variant not in _DIRECT:
        return None
    state, fields = {}, {}
    for key, name in _DIRECT[variant].items():
        value = getattr(config, name, None)
        if isinstance(value, (int, float)):
            state[key], fields[key] = value, name
    groups = {}
    if isinstance(optimizer_lr, (int, float)) and not isinstance(optimizer_lr, bool):
        groups["initial_lr"], fields["initial_lr"] = optimizer_lr, "optimizer.lr"
    return state, groups, fields


def comparable_group(group: dict) -> dict:
    """A saved parameter group with OneCycleLR's factors, as the config gives them, beside the bounds they made
    (initial_lr = max_lr / div_factor, min_lr = initial_lr / final_div_factor)."""
    initial, top, bottom = group.get("initial_lr"), group.get("max_lr"), group.get("min_lr")
    if all(isinstance(v, (int, float)) and v for v in (initial, top, bottom)):
        group = {**group, "div_factor": top / initial, "final_div_factor": initial / bottom}
    return group


def comparable_state(state: dict) -> dict:
    """A scheduler state with OneCycleLR's phases as the config gives them: pct_start (the first phase ends at
    step pct_start * total_steps - 1) and three_phase (the other entries of a phase name group values)."""
    phases, total = state.get("_schedule_phases"), state.get("total_steps")
    if isinstance(phases, list) and phases and all(isinstance(p, dict) for p in phases) and isinstance(total, int) \
            and total > 0 and isinstance(phases[0].get("end_step"), (int, float)):
        state = {key: value for key, value in state.items() if key != "_schedule_phases"}
        state["pct_start"], state["three_phase"] = (phases[0]["end_step"] + 1) / total, len(phases) == 3
    return state


# A key only one kind of scheduler keeps -> that kind (what a saved state was written by).
_KIND_BY_KEY = {
    "_schedule_phases": "OneCycleLR", "T_max": "CosineAnnealingLR", "step_size": "StepLR",
    "start_factor": "LinearLR", "factor": "ConstantLR", "warmup_steps": "LinearWarmupCosineAnnealingLR",
}


def kind_of(state: dict) -> str | None:
    """The kind of scheduler a saved state comes from, where one of its keys tells."""
    return next((kind for key, kind in _KIND_BY_KEY.items() if key in state), None)
