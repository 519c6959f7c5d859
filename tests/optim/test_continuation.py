"""A continued run's schedule (optim/continuation.py): the config's schedule, positioned at the step the run starts
from, and a saved scheduler state only where it agrees. Each continued schedule is compared with a fresh torch
scheduler of the config's length stepped to the same step (or, for our linear warmup + cosine, the formula
worked out by hand)."""

import math

import pytest
import torch
from torch.optim import lr_scheduler as torch_sched

from modalities.optim import schedulers
from modalities.optim.continuation import (
    ScheduleError,
    config_hyperparameters_kept,
    continue_schedule,
    group_values,
)
from modalities.optim.optimizers import ModelPartsOptimizer

LR = 0.1


def _optimizer(lr: float = LR, weight_decay: float = 0.01) -> torch.optim.Optimizer:
    weight, bias = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.zeros(2))
    return torch.optim.AdamW([{"params": [weight]}, {"params": [bias], "weight_decay": 0.0}], lr=lr,
                             weight_decay=weight_decay)


def _warmup_cosine_by_hand(step: int, total: int, base: float = LR, warmup: int = 3, initial: float = 0.01,
                           final: float = 0.001) -> float:
    if step < warmup:
        return initial + (base - initial) * step / warmup
    if step >= total:
        return final
    return final + (base - final) * (1 + math.cos(math.pi * (step - warmup) / (total - warmup))) / 2


# kind -> (our builder of the config's scheduler of a length, the independent expectation: lr before step s)
KINDS = {
    "onecycle": (
        lambda o, n: schedulers.get_onecycle_lr(o, max_lr=0.6, total_steps=n, pct_start=0.25, div_factor=10,
                                                final_div_factor=2, cycle_momentum=True),
        lambda n: torch_sched.OneCycleLR(_optimizer(), max_lr=0.6, total_steps=n, pct_start=0.25, div_factor=10,
                                         final_div_factor=2, cycle_momentum=True),
    ),
    "cosine": (
        lambda o, n: schedulers.get_cosine_annealing_lr(o, t_max=n, eta_min=0.001),
        lambda n: torch_sched.CosineAnnealingLR(_optimizer(), T_max=n, eta_min=0.001),
    ),
    "linear_warmup_cosine": (
        lambda o, n: schedulers.LinearWarmupCosineAnnealingLR(o, warmup_steps=3, total_steps=n, initial_lr=0.01,
                                                              final_lr=0.001),
        None,  # by hand
    ),
}


def _expected_lrs(kind: str, length: int, start: int, end: int) -> list[float]:
    """The lr before each step start+1..end of a run of ``length`` steps, from the independent expectation."""
    if KINDS[kind][1] is None:
        return [_warmup_cosine_by_hand(s, length) for s in range(start, end)]
    scheduler = KINDS[kind][1](length)
    optimizer = scheduler.optimizer
    lrs = []
    for s in range(end):
        if s >= start:
            lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def _trace(scheduler, optimizer, steps: int) -> list[float]:
    """The lr before each of ``steps`` steps (of parameters with a gradient, so the optimizer keeps moments)."""
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                parameter.grad = torch.ones_like(parameter)
        optimizer.step()
        scheduler.step()
    return lrs


def _checkpoint(kind: str, length: int, steps: int) -> tuple[dict, dict]:
    """The scheduler and optimizer state of a run of ``length`` steps saved after ``steps``."""
    optimizer = _optimizer()
    scheduler = KINDS[kind][0](optimizer, length)
    _trace(scheduler, optimizer, steps)
    return scheduler.state_dict(), optimizer.state_dict()


def _continued(kind: str, length: int, saved: tuple[dict, dict], step: int, target: int, **optimizer_args):
    """A fresh optimizer and the config's scheduler, loaded from ``saved`` as a warm start loads, continued."""
    optimizer = _optimizer(**optimizer_args)
    scheduler = KINDS[kind][0](optimizer, length)
    scheduler_state, optimizer_state = saved
    with config_hyperparameters_kept(optimizer, "ckpt", scheduler_state, step):
        optimizer.load_state_dict(optimizer_state)
    return optimizer, scheduler, continue_schedule(scheduler, optimizer, step, target)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize(("saved_length", "new_length"), [(10, 16), (10, 7), (10, 6)], ids=["raised", "lowered",
                                                                                           "lowered_to_one_past"])
def test_a_changed_length_continues_with_the_lrs_of_a_run_of_the_new_length(kind, saved_length, new_length):
    saved = _checkpoint(kind, saved_length, 5)
    optimizer, scheduler, report = _continued(kind, new_length, saved, step=5, target=new_length)
    expected = _expected_lrs(kind, new_length, 5, new_length)
    assert _trace(scheduler, optimizer, new_length - 5) == pytest.approx(expected, rel=1e-12)
    assert report and report[-1] == "the learning-rate schedule follows the config from step 5 on"
    assert any(str(saved_length) in line and str(new_length) in line for line in report)  # both lengths named


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_an_agreeing_saved_state_is_continued_exactly(kind):
    optimizer = _optimizer()
    uninterrupted = KINDS[kind][0](optimizer, 12)
    _trace(uninterrupted, optimizer, 5)
    saved = (uninterrupted.state_dict(), optimizer.state_dict())
    rest = _trace(uninterrupted, optimizer, 7)

    fresh, scheduler, report = _continued(kind, 12, saved, step=5, target=12)
    assert report == []
    assert scheduler.last_epoch == 5
    assert _trace(scheduler, fresh, 7) == rest  # bit for bit: the saved state itself, momentum included


def test_a_saved_state_of_another_step_is_not_used():
    # The checkpoint stood at step 5; the run starts at step 0 (a warm start of the weights only).
    saved = _checkpoint("cosine", 10, 5)
    optimizer, scheduler, report = _continued("cosine", 10, saved, step=0, target=10)
    assert _trace(scheduler, optimizer, 10) == pytest.approx(_expected_lrs("cosine", 10, 0, 10), rel=1e-12)
    assert "stood at step 5; this run starts at step 0" in " ".join(report)


def test_a_saved_state_of_another_kind_is_named_and_the_config_followed():
    saved = _checkpoint("cosine", 10, 4)
    optimizer, scheduler, report = _continued("onecycle", 12, saved, step=4, target=12)
    assert "lr_scheduler: the checkpoint's is a CosineAnnealingLR, the config's a OneCycleLR" in report
    assert _trace(scheduler, optimizer, 8) == pytest.approx(_expected_lrs("onecycle", 12, 4, 12), rel=1e-12)


def test_the_optimizer_hyperparameters_are_the_configs_and_the_difference_is_reported():
    saved = _checkpoint("cosine", 10, 4)  # saved with weight_decay 0.01
    optimizer, _, report = _continued("cosine", 10, saved, step=4, target=10, weight_decay=0.05)
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.05, 0.0]  # the config's groups
    expected = "optimizer weight_decay: the checkpoint's is [0.01, 0], the config's [0.05, 0] (the config's applies)"
    assert expected in report
    # the moments came from the checkpoint
    assert all(int(optimizer.state[p]["step"]) == 4 for group in optimizer.param_groups for p in group["params"])


def test_a_schedule_shorter_than_the_run_is_refused_before_any_step():
    saved = _checkpoint("onecycle", 10, 4)
    optimizer = _optimizer()
    scheduler = KINDS["onecycle"][0](optimizer, 10)
    with config_hyperparameters_kept(optimizer, "ckpt", saved[0], 4):
        optimizer.load_state_dict(saved[1])
    with pytest.raises(ScheduleError, match="total_steps 10, and the run trains to step 11"):
        continue_schedule(scheduler, optimizer, 4, target=11)
    continue_schedule(scheduler, optimizer, 4, target=10)  # to its last step: fine


def test_a_scheduler_built_past_the_starting_step_is_refused():
    optimizer = _optimizer()
    scheduler = schedulers.get_cosine_annealing_lr(optimizer, t_max=10, last_epoch=6)  # positioned at step 7
    with pytest.raises(ScheduleError, match="built at step 7 .* past step 4"):
        continue_schedule(scheduler, optimizer, 4, target=10)
    optimizer = _optimizer()
    # positioned at step 4, where the run starts
    scheduler = schedulers.get_cosine_annealing_lr(optimizer, t_max=10, eta_min=0.001, last_epoch=3)
    continue_schedule(scheduler, optimizer, 4, target=10)
    assert _trace(scheduler, optimizer, 6) == pytest.approx(_expected_lrs("cosine", 10, 4, 10), rel=1e-12)


def test_a_fresh_run_is_left_at_step_zero():
    optimizer = _optimizer()
    scheduler = KINDS["onecycle"][0](optimizer, 8)
    assert continue_schedule(scheduler, optimizer, 0, target=8) == []
    assert _trace(scheduler, optimizer, 8) == pytest.approx(_expected_lrs("onecycle", 8, 0, 8), rel=1e-12)


def test_the_parts_optimizer_shows_the_groups_a_load_put_in_its_parts():
    # Loading a state dict replaces an optimizer's group dicts: the pipeline's optimizer must show the new ones,
    # or a scheduler would set learning rates nobody reads.
    parts = [torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)]
    inner = [torch.optim.AdamW(part.parameters(), lr=LR) for part in parts]
    optimizer = ModelPartsOptimizer(parts, inner)
    scheduler = torch_sched.StepLR(optimizer, step_size=1, gamma=0.5)
    inner[1].load_state_dict(inner[1].state_dict())
    optimizer.step()
    scheduler.step()
    assert [g["lr"] for o in inner for g in o.param_groups] == [LR / 2, LR / 2]
    assert group_values(optimizer) == [{k: v for k, v in g.items() if k != "params"} for o in inner
                                       for g in o.param_groups]
