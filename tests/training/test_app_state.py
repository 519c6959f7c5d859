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
