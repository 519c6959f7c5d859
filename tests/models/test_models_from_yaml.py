"""The model components built by the compiler from YAML in Modalities' format (fields as its configs use them)."""

from __future__ import annotations

import math
import textwrap

import pytest
import torch

from modalities import ConfigError, Main, load_app_config_dict
from modalities.models.gpt2.model import GPT2LLM

MODEL_YAML = """
settings:
  referencing_keys:
    sample_key: input_ids
    prediction_key: logits
  sequence_length: 32

model_raw:
  component_key: model
  variant_key: gpt2
  config:
    use_meta_device: true
    use_weight_tying: false
    sample_key: ${settings.referencing_keys.sample_key}
    poe_type: NOPE
    sequence_length: ${settings.sequence_length}
    prediction_key: ${settings.referencing_keys.prediction_key}
    vocab_size: 128
    n_layer: 2
    n_head_q: 8
    n_head_kv: 4
    ffn_hidden: 128
    n_embd: 64
    dropout: 0.0
    bias: true
    attention_config:
      qkv_transforms:
        - type_hint: RotaryTransform
          config:
            n_embd: ${model_raw.config.n_embd}
            n_head: ${model_raw.config.n_head_q}
            seq_length_dim: -2
            base_freq: 10000
    attention_implementation: manual
    activation_type: swiglu
    attention_norm_config:
      norm_type: layer_norm
      config:
        normalized_shape: ${model_raw.config.n_embd}
        eps: 1e-5
    ffn_norm_config:
      norm_type: rms_norm
      config:
        ndim: ${model_raw.config.n_embd}
        epsilon: 1e-5
    lm_head_norm_config:
      norm_type: pytorch_rms_norm
      config:
        normalized_shape: ${model_raw.config.n_embd}
        eps: 1e-5

initialized_model:
  component_key: model
  variant_key: model_initialized
  config:
    model:
      instance_key: model_raw
      pass_type: BY_REFERENCE
    model_initializer:
      component_key: model_initialization
      variant_key: composed
      config:
        model_type: gpt2
        weight_init_type: scaled
        mean: 0.0
        std: 0.02
        num_layers: ${model_raw.config.n_layer}
        multi_device_generator_policy: error

mfu_calculator:
  component_key: mfu_calculator
  variant_key: gpt2
  config:
    n_layer: ${model_raw.config.n_layer}
    sequence_length: ${settings.sequence_length}
    n_embd: ${model_raw.config.n_embd}
    world_size: 1
    wrapped_model:
      instance_key: initialized_model
      pass_type: BY_REFERENCE
"""


def build(tmp_path, text: str) -> dict:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    return Main(config_dict=load_app_config_dict(path)).build_components()


def test_modalities_style_model_config_builds_initializes_and_runs(tmp_path):
    components = build(tmp_path, MODEL_YAML)
    model = components["initialized_model"]
    assert isinstance(model, GPT2LLM) and model is components["model_raw"]
    assert all(p.device.type == "cpu" and torch.isfinite(p).all() for p in model.parameters())
    scaled = model.transformer.h["0"].mlp.W_2.weight
    assert scaled.std().item() == pytest.approx(0.02 / math.sqrt(4), rel=0.1)
    logits = model({"input_ids": torch.randint(0, 128, (2, 32))})["logits"]
    assert logits.shape == (2, 32, 128)
    assert components["mfu_calculator"].compute(10.0) is None or torch.cuda.is_available()


def test_bad_head_counts_are_reported_by_validation(tmp_path):
    with pytest.raises(ConfigError, match=r"n_head_q \(8\) must be divisible by n_head_kv \(3\)"):
        build(tmp_path, MODEL_YAML.replace("n_head_kv: 4", "n_head_kv: 3"))
