"""Learning-rate schedulers: torch's own where torch has one, built from Modalities' config field names."""

from __future__ import annotations

import math
import warnings
from typing import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LinearLR, LRScheduler, OneCycleLR, StepLR


def _fill_resume_bases(optimizer: Optimizer, last_epoch: int) -> None:
    """Let a schedule start at ``last_epoch`` on an optimizer that was not restored from a checkpoint.

    torch refuses ``last_epoch != -1`` unless every param group has an ``initial_lr``; a restored optimizer
    has one, a freshly built one gets its configured lr.
    """
    if last_epoch != -1:
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])


def _build_at(make: Callable[[int], LRScheduler], optimizer: Optimizer, last_epoch: int) -> LRScheduler:
    """Build a torch scheduler positioned after step ``last_epoch``, also on an optimizer not restored from a
    checkpoint.

    torch's own ``last_epoch`` argument needs the param groups' ``initial_lr`` (and OneCycleLR's bounds), which
    only a restored optimizer has, and its chainable schedules derive the next lr from the group's current
    one. On a fresh optimizer the scheduler is therefore built for step 0, its lrs set to the closed-form
    values at ``last_epoch``, and stepped once.
    """
    if last_epoch == -1 or all("initial_lr" in group for group in optimizer.param_groups):
        return make(last_epoch)
    scheduler = make(-1)
    scheduler.last_epoch = last_epoch
    closed_form = getattr(scheduler, "_get_closed_form_lr", None)
    if closed_form is not None:
        for group, lr in zip(optimizer.param_groups, closed_form()):
            group["lr"] = lr
    with warnings.catch_warnings():
        # "lr_scheduler.step() before optimizer.step()": expected, no optimizer step belongs to this one.
        warnings.simplefilter("ignore", UserWarning)
        scheduler.step()
    return scheduler


class DummyLRScheduler(LRScheduler):
    """Leaves every param group's learning rate as it is."""

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        _fill_resume_bases(optimizer, last_epoch)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[float]:
        return list(self.base_lrs)


class LinearWarmupCosineAnnealingLR(LRScheduler):
    """Linear warmup, then a half cosine, computed in closed form from the step index.

    With ``base`` the param group's configured lr and ``s`` the step::

        s <  warmup_steps:  initial_lr + (base - initial_lr) * s / warmup_steps
        s <= total_steps:   final_lr + (base - final_lr) * (1 + cos(pi * (s - warmup_steps) / cosine_steps)) / 2
        s >  total_steps:   final_lr

    where ``cosine_steps = total_steps - warmup_steps``.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_steps: int,
        total_steps: int,
        initial_lr: float = 0.0,
        final_lr: float = 0.0,
        max_lr: float | None = None,
        last_epoch: int = -1,
    ):
        if max_lr is not None:
            lrs = {group.get("initial_lr", group["lr"]) for group in optimizer.param_groups}
            if lrs != {max_lr}:
                raise ValueError(
                    f"max_lr ({max_lr}) must equal the optimizer's lr ({', '.join(map(str, sorted(lrs)))}): the "
                    "schedule warms up to the optimizer's lr"
                )
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"need 0 <= warmup_steps ({warmup_steps}) <= total_steps ({total_steps})")
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.warmup_initial_lr = initial_lr
        self.final_lr = final_lr
        _fill_resume_bases(optimizer, last_epoch)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step: int, base_lr: float) -> float:
        if step < self.warmup_steps:
            return self.warmup_initial_lr + (base_lr - self.warmup_initial_lr) * step / self.warmup_steps
        if step >= self.total_steps:
            return self.final_lr
        progress = (step - self.warmup_steps) / (self.total_steps - self.warmup_steps)
        return self.final_lr + (base_lr - self.final_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def get_lr(self) -> list[float]:
        return [self.lr_at(self.last_epoch, base_lr) for base_lr in self.base_lrs]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()


def get_step_lr(optimizer: Optimizer, step_size: int, gamma: float, last_epoch: int = -1) -> LRScheduler:
    return _build_at(lambda e: StepLR(optimizer, step_size=step_size, gamma=gamma, last_epoch=e), optimizer, last_epoch)


def get_constant_lr(optimizer: Optimizer, factor: float, total_iters: int, last_epoch: int = -1) -> LRScheduler:
    return _build_at(
        lambda e: ConstantLR(optimizer, factor=factor, total_iters=total_iters, last_epoch=e), optimizer, last_epoch
    )


def get_linear_lr(
    optimizer: Optimizer, start_factor: float, end_factor: float, total_iters: int, last_epoch: int = -1
) -> LRScheduler:
    return _build_at(
        lambda e: LinearLR(
            optimizer, start_factor=start_factor, end_factor=end_factor, total_iters=total_iters, last_epoch=e
        ),
        optimizer,
        last_epoch,
    )


def get_cosine_annealing_lr(
    optimizer: Optimizer, t_max: int, eta_min: float = 0.0, last_epoch: int = -1
) -> LRScheduler:
    return _build_at(
        lambda e: CosineAnnealingLR(optimizer, T_max=t_max, eta_min=eta_min, last_epoch=e), optimizer, last_epoch
    )


def get_onecycle_lr(
    optimizer: Optimizer,
    max_lr: float | list[float],
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    cycle_momentum: bool = True,
    base_momentum: float | list[float] = 0.85,
    max_momentum: float | list[float] = 0.95,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
    last_epoch: int = -1,
) -> LRScheduler:
    return _build_at(
        lambda e: OneCycleLR(
            optimizer,
            max_lr=max_lr,
            total_steps=total_steps,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            pct_start=pct_start,
            anneal_strategy=anneal_strategy,
            cycle_momentum=cycle_momentum,
            base_momentum=base_momentum,
            max_momentum=max_momentum,
            div_factor=div_factor,
            final_div_factor=final_div_factor,
            three_phase=three_phase,
            last_epoch=e,
        ),
        optimizer,
        last_epoch,
    )
