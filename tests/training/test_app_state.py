"""AppState stores the optimizer flattened by parameter name (the reference's layout) and still reads checkpoints
whose optimizer is stored by group index (ours before)."""

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


def test_the_scheduler_is_saved_and_loaded_unless_a_resume_takes_it_from_the_config(tmp_path):
    """A warm start (app_state/dcp) restores the schedule where it was; a resume sets restore_lr_scheduler False
    (training/entry.py advances the config's schedule instead), and the next save includes it again."""
    model, optimizer = _trained(0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    for _ in range(3):
        scheduler.step()
    _save(tmp_path / "a", AppState(model, optimizer, scheduler))
    assert "app.lr_scheduler.last_epoch" in saved_keys(tmp_path / "a")

    fresh_model, fresh_optimizer = _trained(1)
    fresh_scheduler = torch.optim.lr_scheduler.StepLR(fresh_optimizer, step_size=1, gamma=0.5)
    state = AppState(fresh_model, fresh_optimizer, fresh_scheduler)
    safe_load({"app": state}, tmp_path / "a")
    assert fresh_scheduler.last_epoch == 3  # by hand: three steps

    skipping_model, skipping_optimizer = _trained(1)
    skipping_scheduler = torch.optim.lr_scheduler.StepLR(skipping_optimizer, step_size=1, gamma=0.5)
    skipping = AppState(skipping_model, skipping_optimizer, skipping_scheduler)
    skipping.restore_lr_scheduler = False
    safe_load({"app": skipping}, tmp_path / "a")
    assert skipping_scheduler.last_epoch == 0  # left as the config built it
    assert skipping.restore_lr_scheduler is True  # the next save is whole again


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
