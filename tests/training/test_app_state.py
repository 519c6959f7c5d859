"""AppState stores the optimizer flattened by parameter name (the reference's layout) and still reads checkpoints
whose optimizer is stored by group index (ours before)."""

import pytest
import torch
import torch.distributed.checkpoint as dcp
from torch import nn

from modalities.checkpointing.safe_dcp import FLATTENED, GROUPED, optimizer_layout_of, safe_load, saved_keys
from modalities.training.app_state import AppState


def _trained(seed: int):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    # Two groups with different learning rates, so a mixed-up group shows in the lr.
    optimizer = torch.optim.AdamW(
        [{"params": model[0].parameters(), "lr": 0.1}, {"params": model[1].parameters(), "lr": 0.01}]
    )
    for _ in range(2):
        model(torch.randn(5, 3)).square().sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    return model, optimizer


def _save(folder, app_state):
    dcp.save({"app": app_state}, checkpoint_id=str(folder), no_dist=True)


def test_saved_flattened_by_parameter_name(tmp_path):
    model, optimizer = _trained(0)
    _save(tmp_path, AppState(model, optimizer))
    keys = saved_keys(tmp_path)
    assert "app.optimizer.state.0.weight.exp_avg" in keys
    assert "app.optimizer.param_groups.1.bias.lr" in keys  # group of the parameter "1.bias", not group 1
    assert optimizer_layout_of(keys) == FLATTENED


def _assert_same_optimizer(loaded, saved):
    assert [g["lr"] for g in loaded.param_groups] == [0.1, 0.01]
    for p_loaded, p_saved in zip(
        (p for g in loaded.param_groups for p in g["params"]), (p for g in saved.param_groups for p in g["params"])
    ):
        for moment in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(loaded.state[p_loaded][moment], saved.state[p_saved][moment])
        assert int(loaded.state[p_loaded]["step"]) == 2


def test_a_checkpoint_with_groups_by_index_loads_and_the_next_save_is_flattened(tmp_path):
    model, optimizer = _trained(0)
    old = AppState(model, optimizer)
    old.optimizer_layout = GROUPED
    _save(tmp_path / "old", old)
    assert optimizer_layout_of(saved_keys(tmp_path / "old")) == GROUPED
    assert "app.optimizer.param_groups.1.params" in saved_keys(tmp_path / "old")

    fresh_model, fresh_optimizer = _trained(1)
    fresh = AppState(fresh_model, fresh_optimizer)
    safe_load({"app": fresh}, tmp_path / "old")
    for name, value in model.state_dict().items():
        assert torch.equal(fresh_model.state_dict()[name], value), name
    _assert_same_optimizer(fresh_optimizer, optimizer)

    _save(tmp_path / "new", fresh)
    assert optimizer_layout_of(saved_keys(tmp_path / "new")) == FLATTENED


def test_a_flattened_checkpoint_loads(tmp_path):
    model, optimizer = _trained(0)
    _save(tmp_path, AppState(model, optimizer))
    fresh_model, fresh_optimizer = _trained(1)
    safe_load({"app": AppState(fresh_model, fresh_optimizer)}, tmp_path)
    _assert_same_optimizer(fresh_optimizer, optimizer)


def _step_lr(optimizer, gamma):
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=gamma)


def test_loading_keeps_the_config_schedule_and_records_the_saved_one_which_continues_where_it_agrees(tmp_path):
    """Loading brings weights and moments and reads the checkpoint's scheduler state aside; the built objects then
    read as at the saved step (as the reference's app state does: get_last_lr of step 3), by the rule
    continue_schedule applies when the run starts: the saved state where it agrees, else the config's schedule
    (hand-computed lrs: the groups' lrs 0.1 and 0.01 halved per step by StepLR(gamma=0.5), or times 0.9 with
    the config's gamma). A run that starts elsewhere (step 0, a fine-tune) starts from the schedule as built."""
    from modalities.optim.continuation import continue_schedule, saved_schedule

    model, optimizer = _trained(0)
    scheduler = _step_lr(optimizer, 0.5)
    for _ in range(3):
        scheduler.step()
    _save(tmp_path / "a", AppState(model, optimizer, scheduler))
    assert "app.lr_scheduler.last_epoch" in saved_keys(tmp_path / "a")

    for gamma, expected, reported in ((0.5, [0.1 * 0.5**3, 0.01 * 0.5**3], []), (0.9, [0.1 * 0.9**3, 0.01 * 0.9**3],
                                                                                  ["gamma"])):
        fresh_model, fresh_optimizer = _trained(1)
        fresh_scheduler = _step_lr(fresh_optimizer, gamma)
        state = AppState(fresh_model, fresh_optimizer, fresh_scheduler)
        safe_load({"app": state}, tmp_path / "a")
        assert fresh_scheduler.last_epoch == 3  # where the checkpoint stood
        assert [g["lr"] for g in fresh_optimizer.param_groups] == pytest.approx(expected, rel=1e-12)
        assert fresh_scheduler.get_last_lr() == pytest.approx(expected, rel=1e-12)
        assert saved_schedule(fresh_optimizer).state["last_epoch"] == 3
        report = continue_schedule(fresh_scheduler, fresh_optimizer, step=3, target=10)
        assert fresh_scheduler.last_epoch == 3
        assert [g["lr"] for g in fresh_optimizer.param_groups] == pytest.approx(expected, rel=1e-12)
        assert all(any(word in line for line in report) for word in reported) and bool(report) == bool(reported)
        _save(tmp_path / f"again_{gamma}", state)  # the next save holds the scheduler again
        assert "app.lr_scheduler.gamma" in saved_keys(tmp_path / f"again_{gamma}")


@pytest.mark.parametrize("gamma", [0.5, 0.9])  # the saved schedule agreeing with the config's, and not
def test_a_run_starting_before_the_saved_step_follows_the_schedule_as_built(tmp_path, gamma):
    """A fine-tune from a checkpoint of step 3 that starts its own count at step 0: the built objects showed the
    saved step after loading, and the run starts from the config's schedule at step 0 (lrs 0.1 and 0.01), not
    from step 3 (a schedule cannot go back: that would be an error)."""
    from modalities.optim.continuation import continue_schedule

    model, optimizer = _trained(0)
    scheduler = _step_lr(optimizer, 0.5)
    for _ in range(3):
        scheduler.step()
    _save(tmp_path / "a", AppState(model, optimizer, scheduler))
    fresh_model, fresh_optimizer = _trained(1)
    fresh_scheduler = _step_lr(fresh_optimizer, gamma)
    safe_load({"app": AppState(fresh_model, fresh_optimizer, fresh_scheduler)}, tmp_path / "a")
    assert fresh_scheduler.last_epoch == 3
    report = continue_schedule(fresh_scheduler, fresh_optimizer, step=0, target=10)
    assert fresh_scheduler.last_epoch == 0
    assert [g["lr"] for g in fresh_optimizer.param_groups] == [0.1, 0.01]
    assert any("stood at step 3; this run starts at step 0" in line for line in report)


def test_app_state_dcp_returns_the_app_state_loaded_from_the_folder(tmp_path):
    """`app_state/dcp` (the reference's warm start): the app state it hands on holds the folder's weights and
    optimizer state, also from a folder of shards alone (no training_progress.json, as the reference writes)."""
    from modalities.training.app_state import get_dcp_checkpointed_app_state

    model, optimizer = _trained(0)
    _save(tmp_path, AppState(model, optimizer))
    fresh_model, fresh_optimizer = _trained(1)
    loaded = get_dcp_checkpointed_app_state(AppState(fresh_model, fresh_optimizer), str(tmp_path))
    assert isinstance(loaded, AppState) and loaded.model is fresh_model
    for (name, expected), got in zip(model.state_dict().items(), loaded.model.state_dict().values()):
        assert torch.equal(got, expected), name
    _assert_same_optimizer(loaded.optimizer, optimizer)
