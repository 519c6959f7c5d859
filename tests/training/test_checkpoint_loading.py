"""`model/checkpointed` and `optimizer/checkpointed`: a saved checkpoint loaded into freshly built components."""

import pytest
import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict
from torch.distributed.checkpoint.state_dict_loader import _load_state_dict_from_keys

from modalities import Main
from modalities.checkpointing.dcp import read_model_state_dict
from modalities.cli.main import main as cli
from modalities.training.distributed import destroy_process_group
from tests.training.conftest import TINY, standins_registry, train_in_process
from tests.training.standins import TinyLM

FULL = StateDictOptions(full_state_dict=True)

LOADED_FROM_FOLDER = """
loaded_model:
  component_key: model
  variant_key: checkpointed
  config:
    model: {{instance_key: model, pass_type: BY_REFERENCE}}
    checkpoint_loading: {{component_key: checkpoint_loading, variant_key: fsdp, config: {{}}}}
    checkpoint_path: {checkpoint}

loaded_optimizer:
  component_key: optimizer
  variant_key: checkpointed
  config:
    optimizer: {{instance_key: optimizer, pass_type: BY_REFERENCE}}
    wrapped_model: {{instance_key: loaded_model, pass_type: BY_REFERENCE}}
    checkpoint_loading: {{component_key: checkpoint_loading, variant_key: fsdp, config: {{}}}}
    checkpoint_path: {checkpoint}
"""

LOADED_FROM_PT = """
plain_model:
  component_key: model
  variant_key: checkpointed
  config:
    model:
      component_key: model
      variant_key: tiny_lm
      config: {{vocab_size: 32, n_embd: 16, n_layer: 2, sample_key: input_ids, prediction_key: logits, seed: 5}}
    checkpoint_loading: {{component_key: checkpoint_loading, variant_key: torch, config: {{device: cpu}}}}
    checkpoint_path: {pt_file}
"""


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    assert train_in_process(root, "src", "--set", "settings.training_target.num_target_steps=3") == 0
    return root / "src" / "checkpoints" / "step_3"


def _build(tmp_path, extra_yaml: str) -> dict:
    config = tmp_path / "load.yaml"
    config.write_text(TINY.read_text() + extra_yaml)
    main = Main(config_path=config, experiments_root=tmp_path, experiment_id="load", registry=standins_registry())
    return main.build_components()


def test_checkpointed_model_and_optimizer_hold_the_saved_state(tmp_path, trained_checkpoint):
    saved_model = read_model_state_dict(trained_checkpoint)
    fresh = TinyLM(vocab_size=32, n_embd=16, n_layer=2, sample_key="input_ids", prediction_key="logits").state_dict()
    assert any(not torch.equal(fresh[k], saved_model[k]) for k in fresh)  # training moved the weights

    try:
        components = _build(tmp_path, LOADED_FROM_FOLDER.format(checkpoint=trained_checkpoint))
        model, optimizer = components["loaded_model"], components["loaded_optimizer"]
        assert model is components["model"] and optimizer is components["optimizer"]  # loaded in place
        loaded_model = get_model_state_dict(model, options=FULL)
        loaded_optimizer = get_optimizer_state_dict(model, optimizer, options=FULL)
    finally:
        destroy_process_group()

    assert loaded_model.keys() == saved_model.keys()
    for key, value in saved_model.items():
        assert torch.equal(loaded_model[key], value), key
    # Saved flattened by parameter name, as the reference saves it: app.optimizer.state.<fqn>.exp_avg
    saved_optimizer = _load_state_dict_from_keys(keys={"app.optimizer"}, checkpoint_id=str(trained_checkpoint))
    saved_flat = saved_optimizer["app"]["optimizer"]
    assert loaded_optimizer["state"].keys() == saved_model.keys()
    for name in saved_model:
        assert int(loaded_optimizer["state"][name]["step"]) == int(saved_flat[f"state.{name}.step"]) == 3
        for moment in ("exp_avg", "exp_avg_sq"):
            saved = saved_flat[f"state.{name}.{moment}"]
            assert torch.equal(loaded_optimizer["state"][name][moment], saved), (name, moment)


def test_checkpointed_model_from_a_converted_pt_file(tmp_path, trained_checkpoint):
    pt_file = tmp_path / "model.pt"
    assert cli(["convert", "to-torch", str(trained_checkpoint), str(pt_file)]) == 0
    try:
        model = _build(tmp_path, LOADED_FROM_PT.format(pt_file=pt_file))["plain_model"]
    finally:
        destroy_process_group()
    saved = read_model_state_dict(trained_checkpoint)
    assert all(torch.equal(value, saved[key]) for key, value in model.state_dict().items())
