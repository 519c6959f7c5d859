import inspect
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from modalities import ConfigError, Main, load_app_config_dict
from modalities.batch import InferenceResultBatch
from modalities.optim.catalog import CATALOG
from modalities.registry.types import ComponentConfig, Field

from .tiny_model import TinyLM, tiny_batch

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_config_module_does_not_import_torch():
    code = "import sys, modalities.optim.config, modalities.optim.catalog; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                            env={"PYTHONPATH": str(REPO_ROOT)}, timeout=600)
    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.parametrize("spec", CATALOG, ids=lambda s: s.name)
def test_every_field_is_described_and_accepted_by_the_builder(spec):
    config_class = spec.config_class()
    assert config_class.__doc__
    parameters = inspect.signature(spec.builder_callable()).parameters
    for name, field in config_class.model_fields.items():
        assert field.description, f"{spec.name}.{name} has no description"
        assert name in parameters, f"{spec.name}: builder does not take {name}"


class TinyLMConfig(ComponentConfig):
    vocab_size: int = Field(description="Vocabulary size.")


CONFIG = """
settings:
  referencing_keys:
    target_key: target_ids
    prediction_key: logits
  training_progress:
    last_step: -1

loss_fn:
  component_key: loss
  variant_key: clm_cross_entropy_loss
  config:
    target_key: ${settings.referencing_keys.target_key}
    prediction_key: ${settings.referencing_keys.prediction_key}

model:
  component_key: model
  variant_key: tiny_lm
  config:
    vocab_size: 13

optimizer:
  component_key: optimizer
  variant_key: adam_w
  config:
    lr: 0.0001
    betas: [0.9, 0.95]
    eps: 1e-8
    weight_decay: 1e-1
    weight_decay_groups_excluded: [embedding, layernorm]
    wrapped_model:
      instance_key: model
      pass_type: BY_REFERENCE

lr_scheduler:
  component_key: scheduler
  variant_key: onecycle_lr
  config:
    optimizer:
      instance_key: optimizer
      pass_type: BY_REFERENCE
    max_lr: 6e-4
    div_factor: 10
    final_div_factor: 1
    total_steps: 200
    pct_start: 0.01
    anneal_strategy: cos
    last_epoch: ${settings.training_progress.last_step}

gradient_clipper:
  component_key: gradient_clipper
  variant_key: fsdp2
  config:
    wrapped_model:
      instance_key: model
      pass_type: BY_REFERENCE
    norm_type: P2_NORM
    max_norm: 1.0
"""


def _main(tmp_path, text: str) -> Main:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    main = Main(load_app_config_dict(path))
    main.add_custom_component("model", "tiny_lm", TinyLM, TinyLMConfig)
    return main


def test_modalities_style_config_builds_and_trains_a_step(tmp_path):
    components = _main(tmp_path, CONFIG).build_components()
    model, optimizer = components["model"], components["optimizer"]
    assert isinstance(optimizer, torch.optim.AdamW)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]
    assert components["lr_scheduler"].optimizer is optimizer
    assert optimizer.param_groups[0]["lr"] == pytest.approx(6e-5)  # onecycle starts at max_lr / div_factor

    inputs, targets = tiny_batch()
    before = model.lm_head.weight.detach().clone()
    predictions = model({"input_ids": inputs})
    loss = components["loss_fn"](InferenceResultBatch(targets={"target_ids": targets}, predictions=predictions))
    loss.backward()
    norm = components["gradient_clipper"].clip_gradients()
    assert norm > 0
    optimizer.step()
    components["lr_scheduler"].step()
    assert not torch.equal(before, model.lm_head.weight)


def test_wrong_component_kind_is_reported_before_building(tmp_path):
    text = CONFIG.replace(
        "    norm_type: P2_NORM", "    norm_type: P2_NORM\n    device_mesh:\n      instance_key: optimizer\n"
        "      pass_type: BY_REFERENCE"
    )
    with pytest.raises(ConfigError, match="device_mesh"):
        _main(tmp_path, text).build_components()
