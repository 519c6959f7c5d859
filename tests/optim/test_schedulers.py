import math

import pytest
import torch
from torch.optim import lr_scheduler as torch_sched

from modalities.optim import config as cfg
from modalities.optim import schedulers

STEPS = 100
BASE_LR = 0.1


def _optimizer(lr: float = BASE_LR) -> torch.optim.Optimizer:
    weight = torch.nn.Parameter(torch.ones(2))
    bias = torch.nn.Parameter(torch.zeros(2))
    return torch.optim.AdamW([{"params": [weight]}, {"params": [bias], "weight_decay": 0.0}], lr=lr)


def _trace(scheduler, optimizer, steps: int = STEPS) -> list[list[float]]:
    """The lr of every group before each of ``steps`` optimizer steps (the values a training loop uses)."""
    lrs = []
    for _ in range(steps):
        lrs.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return lrs


def _flat(rows: list[list[float]]) -> list[float]:
    return [x for row in rows for x in row]


def _momenta(optimizer) -> list[float]:
    return [g["betas"][0] for g in optimizer.param_groups]


CASES = {
    "step_lr": (cfg.StepLRSchedulerConfig, schedulers.get_step_lr, dict(step_size=7, gamma=0.5),
                lambda o: torch_sched.StepLR(o, step_size=7, gamma=0.5)),
    "constant_lr": (cfg.ConstantLRSchedulerConfig, schedulers.get_constant_lr, dict(factor=0.25, total_iters=30),
                    lambda o: torch_sched.ConstantLR(o, factor=0.25, total_iters=30)),
    "linear_lr": (cfg.LinearLRSchedulerConfig, schedulers.get_linear_lr,
                  dict(start_factor=0.1, end_factor=0.9, total_iters=60),
                  lambda o: torch_sched.LinearLR(o, start_factor=0.1, end_factor=0.9, total_iters=60)),
    "cosine_annealing_lr": (cfg.CosineAnnealingLRSchedulerConfig, schedulers.get_cosine_annealing_lr,
                            dict(t_max=80, eta_min=0.001),
                            lambda o: torch_sched.CosineAnnealingLR(o, T_max=80, eta_min=0.001)),
    "onecycle_lr": (cfg.OneCycleLRSchedulerConfig, schedulers.get_onecycle_lr,
                    dict(max_lr=0.6, total_steps=STEPS, pct_start=0.1, anneal_strategy="cos", div_factor=10,
                         final_div_factor=2),
                    # momentum is not cycled unless asked: the reference's (main) default, torch's is the opposite
                    lambda o: torch_sched.OneCycleLR(o, max_lr=0.6, total_steps=STEPS, pct_start=0.1,
                                                     anneal_strategy="cos", div_factor=10, final_div_factor=2,
                                                     cycle_momentum=False)),
    "onecycle_lr_three_phase_linear": (
        cfg.OneCycleLRSchedulerConfig, schedulers.get_onecycle_lr,
        dict(max_lr=[0.6, 0.3], epochs=4, steps_per_epoch=25, pct_start=0.3, anneal_strategy="linear",
             div_factor=25, final_div_factor=1e4, three_phase=True, cycle_momentum=True),
        lambda o: torch_sched.OneCycleLR(o, max_lr=[0.6, 0.3], epochs=4, steps_per_epoch=25, pct_start=0.3,
                                         anneal_strategy="linear", three_phase=True)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_torch_step_by_step(name):
    config_class, builder, fields, make_torch = CASES[name]
    ours_optimizer, torch_optimizer = _optimizer(), _optimizer()
    config = config_class(optimizer=ours_optimizer, **fields)
    ours = builder(**dict(config))
    reference = make_torch(torch_optimizer)
    ours_lrs, torch_lrs = [], []
    for _ in range(STEPS):
        ours_lrs.append([g["lr"] for g in ours_optimizer.param_groups] + _momenta(ours_optimizer))
        torch_lrs.append([g["lr"] for g in torch_optimizer.param_groups] + _momenta(torch_optimizer))
        for o, s in ((ours_optimizer, ours), (torch_optimizer, reference)):
            o.step()
            s.step()
    assert ours_lrs == torch_lrs
    assert len({tuple(x) for x in ours_lrs}) > 1  # the schedule really changes the lr


def test_dummy_lr_keeps_the_lr():
    optimizer = _optimizer()
    scheduler = schedulers.DummyLRScheduler(**dict(cfg.DummyLRSchedulerConfig(optimizer=optimizer)))
    assert _trace(scheduler, optimizer) == [[BASE_LR, BASE_LR]] * STEPS
    assert scheduler.get_last_lr() == [BASE_LR, BASE_LR]


def _warmup_cosine_closed_form(step, base, warmup, total, initial, final) -> float:
    if step < warmup:
        return initial + (base - initial) * step / warmup
    if step >= total:
        return final
    return final + (base - final) * (1 + math.cos(math.pi * (step - warmup) / (total - warmup))) / 2


@pytest.mark.parametrize(
    "warmup, total, initial, final", [(10, 80, 0.0, 0.01), (0, 99, 0.0, 0.0), (25, 25, 0.005, 0.002)]
)
def test_linear_warmup_cosine_matches_closed_form(warmup, total, initial, final):
    optimizer = _optimizer()
    config = cfg.LinearWarmupCosineAnnealingLRSchedulerConfig(
        optimizer=optimizer, warmup_steps=warmup, total_steps=total, initial_lr=initial, final_lr=final)
    scheduler = schedulers.LinearWarmupCosineAnnealingLR(**dict(config))
    lrs = _trace(scheduler, optimizer)
    for step, (lr, _) in enumerate(lrs):
        assert lr == pytest.approx(_warmup_cosine_closed_form(step, BASE_LR, warmup, total, initial, final), abs=1e-12)
    assert lrs[warmup][0] == pytest.approx(BASE_LR if warmup < total else final)
    assert lrs[-1][0] == pytest.approx(final)


def test_linear_warmup_cosine_resumes_at_last_epoch():
    full_optimizer = _optimizer()
    full = schedulers.LinearWarmupCosineAnnealingLR(full_optimizer, warmup_steps=10, total_steps=60, final_lr=0.01)
    full_lrs = _trace(full, full_optimizer, 60)
    resumed_optimizer = _optimizer()  # a fresh optimizer: no 'initial_lr' stored in its groups
    resumed = schedulers.LinearWarmupCosineAnnealingLR(resumed_optimizer, warmup_steps=10, total_steps=60,
                                                       final_lr=0.01, last_epoch=29)
    assert _flat(_trace(resumed, resumed_optimizer, 30)) == pytest.approx(_flat(full_lrs[30:]))


@pytest.mark.parametrize(
    "name", ["step_lr", "constant_lr", "linear_lr", "cosine_annealing_lr", "onecycle_lr_three_phase_linear"]
)
def test_torch_schedules_resume_on_a_fresh_optimizer(name):
    config_class, builder, fields, _ = CASES[name]
    full_optimizer = _optimizer()
    full_lrs = _trace(builder(**dict(config_class(optimizer=full_optimizer, **fields))), full_optimizer, 60)
    resumed_optimizer = _optimizer()
    resumed = builder(**dict(config_class(optimizer=resumed_optimizer, last_epoch=39, **fields)))
    assert _flat(_trace(resumed, resumed_optimizer, 20)) == pytest.approx(_flat(full_lrs[40:]))


def test_config_errors():
    optimizer = _optimizer()
    with pytest.raises(Exception, match="warmup_steps"):
        cfg.LinearWarmupCosineAnnealingLRSchedulerConfig(optimizer=optimizer, warmup_steps=20, total_steps=10)
    with pytest.raises(Exception, match="total_steps, or both epochs and steps_per_epoch"):
        cfg.OneCycleLRSchedulerConfig(optimizer=optimizer, max_lr=0.1, epochs=3)
    with pytest.raises(Exception, match="step_size"):
        cfg.StepLRSchedulerConfig(optimizer=optimizer, step_size=2.5, gamma=0.1)
    with pytest.raises(Exception, match="anneal_strategy"):
        cfg.OneCycleLRSchedulerConfig(optimizer=optimizer, max_lr=0.1, total_steps=3, anneal_strategy="cosine")


def test_linear_warmup_cosine_matches_the_reference_construction():
    # The reference builds this schedule from torch's LinearLR and CosineAnnealingLR in a SequentialLR; up to
    # total_steps both give the same learning rates.
    ours_optimizer, torch_optimizer = _optimizer(lr=0.5), _optimizer(lr=0.5)
    ours = schedulers.LinearWarmupCosineAnnealingLR(
        ours_optimizer, warmup_steps=10, total_steps=60, initial_lr=0.05, final_lr=0.01, max_lr=0.5
    )
    reference = torch_sched.SequentialLR(
        torch_optimizer,
        schedulers=[
            torch_sched.LinearLR(torch_optimizer, start_factor=0.05 / 0.5, end_factor=1, total_iters=10),
            torch_sched.CosineAnnealingLR(torch_optimizer, T_max=50, eta_min=0.01),
        ],
        milestones=[10],
    )
    assert _flat(_trace(ours, ours_optimizer, 61)) == pytest.approx(_flat(_trace(reference, torch_optimizer, 61)))


def test_linear_warmup_cosine_max_lr_must_be_the_optimizer_lr():
    with pytest.raises(ValueError, match=r"max_lr \(0.3\) must equal the optimizer's lr \(0.5\)"):
        schedulers.LinearWarmupCosineAnnealingLR(_optimizer(lr=0.5), warmup_steps=2, total_steps=5, max_lr=0.3)


def test_onecycle_does_not_cycle_momentum_unless_asked():
    optimizer = _optimizer()
    config = cfg.OneCycleLRSchedulerConfig(optimizer=optimizer, max_lr=0.6, total_steps=10)
    assert config.cycle_momentum is False
    scheduler = schedulers.get_onecycle_lr(**dict(config))
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    assert _momenta(optimizer) == [0.9, 0.9]  # AdamW's beta1, untouched
