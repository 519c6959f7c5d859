"""Custom components written the reference's way: dependency fields typed by Python classes (nn.Module, Optimizer,
a user class) or by the reference's Pydantic...Type annotations validate before anything is built."""

from __future__ import annotations

import textwrap

import pytest
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from modalities import ConfigError, Main, load_app_config_dict
from modalities.config.build import BuildError
from modalities.config.pydantic_if_types import PydanticOptimizerIFType, PydanticPytorchModuleType


class Thing:
    pass


class ThingConfig(BaseModel):
    name: str


def make_thing(name: str) -> Thing:
    thing = Thing()
    thing.name = name
    return thing


class ProbeConfig(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    model: nn.Module
    optimizer: torch.optim.Optimizer | None = None
    extras: list[Thing] = []


class ReferenceStyleProbeConfig(BaseModel):
    model: PydanticPytorchModuleType
    optimizer: PydanticOptimizerIFType


class Probe:
    def __init__(self, model, optimizer=None, extras=()):
        self.model, self.optimizer, self.extras = model, optimizer, list(extras)


MODEL = (
    "{component_key: model, variant_key: vision_transformer, config: {sample_key: images, prediction_key: out,"
    " img_size: 4, n_classes: 2, n_layer: 1, n_head: 1, n_embd: 4, ffn_hidden: 4, patch_size: 4, patch_stride: 4}}"
)
OPTIMIZER = (
    "{component_key: optimizer, variant_key: adam_w, config: {lr: 0.1, betas: [0.9, 0.95], eps: 1.0e-8, weight_decay: 0.0,"
    " weight_decay_groups_excluded: [], wrapped_model: {instance_key: model, pass_type: BY_REFERENCE}}}"
)


def _main(tmp_path, body: str) -> Main:
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(body))
    main = Main(load_app_config_dict(path))
    main.add_custom_component("thing", "default", make_thing, ThingConfig)
    main.add_custom_component("probe", "default", Probe, ProbeConfig)
    main.add_custom_component("probe", "reference_style", Probe, ReferenceStyleProbeConfig)
    return main


def test_python_typed_fields_take_components_of_the_matching_kind(tmp_path):
    main = _main(tmp_path, f"""
        model: {MODEL}
        optimizer: {OPTIMIZER}
        thing: {{component_key: thing, variant_key: default, config: {{name: t}}}}
        probe:
          component_key: probe
          variant_key: default
          config:
            model: {{instance_key: model, pass_type: BY_REFERENCE}}
            optimizer: {{instance_key: optimizer, pass_type: BY_REFERENCE}}
            extras: [{{instance_key: thing, pass_type: BY_REFERENCE}}]
        reference_style:
          component_key: probe
          variant_key: reference_style
          config:
            model: {{instance_key: model, pass_type: BY_REFERENCE}}
            optimizer: {{instance_key: optimizer, pass_type: BY_REFERENCE}}
        """)
    main.validate()
    built = main.build_components()
    assert built["probe"].model is built["model"] and built["probe"].optimizer is built["optimizer"]
    assert built["probe"].extras == [built["thing"]]
    assert built["reference_style"].model is built["model"]


def test_a_component_of_the_wrong_kind_is_an_error_at_its_line(tmp_path):
    main = _main(tmp_path, f"""
        model: {MODEL}
        data: {{component_key: dataset, variant_key: dummy_dataset, config: {{num_samples: 1, sample_definition: []}}}}
        probe:
          component_key: probe
          variant_key: default
          config:
            model: {{instance_key: data, pass_type: BY_REFERENCE}}
            optimizer: {{instance_key: model, pass_type: BY_REFERENCE}}
        """)
    with pytest.raises(ConfigError) as raised:
        main.validate()
    errors = {".".join(map(str, d.path)): (d.message, d.span.line) for d in raised.value.errors}
    assert errors["probe.config.model"][1] == 8  # the line of `model: {instance_key: data ...}`
    assert "expected a 'model' component or a 'layer_norm' component, but 'data'" in errors["probe.config.model"][0]
    assert "expected a 'optimizer' component, but 'model'" in errors["probe.config.optimizer"][0]


def test_a_class_of_no_known_kind_is_checked_with_isinstance_when_built(tmp_path):
    main = _main(tmp_path, f"""
        model: {MODEL}
        probe:
          component_key: probe
          variant_key: default
          config:
            model: {{instance_key: model, pass_type: BY_REFERENCE}}
            extras: [{{instance_key: model, pass_type: BY_REFERENCE}}]
        """)
    main.validate()  # any kind may produce a Thing
    with pytest.raises(BuildError, match=r"'probe' \(probe/default\) is invalid once built: extras.0: Input should be an instance of Thing"):
        main.build_components()
