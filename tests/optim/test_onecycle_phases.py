"""scheduler/onecycle_lr: a config that torch's OneCycleLR would divide by zero on (a warm-up of exactly one
step, no annealing steps) is a config error at validate, not a crash when built. torch itself is the oracle."""

import itertools
import warnings

import pytest
import torch
from pydantic import ValidationError

from modalities.optim.config import OneCycleLRSchedulerConfig

REF = {"instance_key": "optimizer", "pass_type": "BY_REFERENCE"}


def _torch_runs(total: int, pct: float, three: bool) -> bool:
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=0.1, total_steps=total, pct_start=pct, three_phase=three, cycle_momentum=False
            )
            for _ in range(total):  # the trainer steps the schedule once per optimizer step
                optimizer.step()
                scheduler.step()
        except ZeroDivisionError:
            return False
    return True


def _we_accept(total: int, pct: float, three: bool) -> bool:
    config = {"optimizer": REF, "max_lr": 0.1, "total_steps": total, "pct_start": pct, "three_phase": three}
    try:
        OneCycleLRSchedulerConfig.model_validate(config)
    except ValidationError as e:
        assert "divides by zero" in str(e)
        return False
    return True


def test_validation_agrees_with_torch_on_which_schedules_divide_by_zero():
    cases = list(itertools.product(range(1, 22), (0.05, 0.1, 0.2, 0.25, 0.3, 0.5, 0.75, 0.9, 1.0), (False, True)))
    disagreements = [case for case in cases if _torch_runs(*case) != _we_accept(*case)]
    assert disagreements == []
    assert sum(not _torch_runs(*case) for case in cases) >= 10  # the grid does hold failing schedules


def test_the_quick_starts_schedule_shortened_to_five_steps_is_refused_with_the_reason():
    with pytest.raises(ValidationError, match=r"pct_start 0.2 x total_steps 5 is a warm-up of exactly 1 step"):
        OneCycleLRSchedulerConfig.model_validate({"optimizer": REF, "max_lr": 3e-3, "total_steps": 5, "pct_start": 0.2})
    # the same through epochs x steps_per_epoch
    with pytest.raises(ValidationError, match="exactly 1 step"):
        OneCycleLRSchedulerConfig.model_validate(
            {"optimizer": REF, "max_lr": 3e-3, "epochs": 1, "steps_per_epoch": 5, "pct_start": 0.2}
        )
