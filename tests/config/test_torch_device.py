"""The device field of checkpoint_loading/torch and inference_component/text: one check for both, at validate.

The reference takes `cpu` and a GPU index N (src/modalities/config/utils.py parse_torch_device); we also take
torch's `cuda` and `cuda:N`. Whatever torch.device would refuse when the component is built is refused here,
positioned, with a hint."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modalities.checkpointing.configs.torch_loading import TorchCheckpointLoadingConfig
from modalities.config.graph import build_component_graph
from modalities.config.load import load_text
from modalities.config.resolve import ResolverContext, resolve_document
from modalities.config.validate import validate_graph
from modalities.inference.config import TextInferenceComponentConfig
from modalities.registry import Registry

INFERENCE_FIELDS = {"model": "m", "tokenizer": "t", "prompt_template": "{x}", "sequence_length": 8}
CONFIGS = {
    "checkpoint_loading/torch": (TorchCheckpointLoadingConfig, {}),
    "inference_component/text": (TextInferenceComponentConfig, INFERENCE_FIELDS),
}

ACCEPTED = ["cpu", "cuda", "cuda:0", "cuda:7", "cuda:10", 0, 1, 7]
REFUSED = [
    "cuda:x",  # not an index
    "cpu:0",  # torch takes it, the reference does not: one spelling for the CPU
    "cuda:",  # no index after the colon
    "cuda:01",  # torch refuses a leading zero
    "cuda:-1",
    "cuda:+1",
    "cuda:١",  # a digit of another script
    "CUDA",
    " cuda",
    "gpu",
    "",
    -1,
]


@pytest.mark.parametrize("component", sorted(CONFIGS))
@pytest.mark.parametrize("device", ACCEPTED, ids=repr)
def test_a_device_torch_takes_is_accepted_as_written(component, device):
    cls, fields = CONFIGS[component]
    assert cls.model_validate({**fields, "device": device}).device == device


@pytest.mark.parametrize("component", sorted(CONFIGS))
@pytest.mark.parametrize("device", REFUSED, ids=repr)
def test_a_device_torch_would_refuse_is_refused_when_validated(component, device):
    cls, fields = CONFIGS[component]
    with pytest.raises(ValidationError) as raised:
        cls.model_validate({**fields, "device": device})
    (error,) = [e for e in raised.value.errors() if e["type"] == "torch_device"]
    assert error["loc"] == ("device",)


@pytest.mark.parametrize("device", [True, 1.0, None, [0]], ids=repr)
def test_a_value_that_is_no_index_or_text_is_refused(device):
    with pytest.raises(ValidationError):
        TorchCheckpointLoadingConfig.model_validate({"device": device})


def _reported(text: str) -> list[tuple]:
    registry = Registry()
    registry.register(component_key="checkpoint_loading", variant_key="torch", custom_component=dict,
                      custom_config=TorchCheckpointLoadingConfig)
    document, _ = resolve_document(load_text(text, "f.yaml"), ResolverContext(None, None, None))
    graph, _ = build_component_graph(document)
    _, diagnostics = validate_graph(graph, registry)
    return [(d.message, f"{d.span.line}:{d.span.col}", d.hint) for d in diagnostics]


@pytest.mark.parametrize(
    ("written", "message", "hint"),
    [
        ("cuda:x", "not a device torch can use (got 'cuda:x')", "write cpu, cuda, cuda:N or a GPU index N (e.g. 0)"),
        ("cpu:0", "not a device torch can use (got 'cpu:0')",
         "write cpu, cuda, cuda:N or a GPU index N (e.g. 0); cpu takes no index"),
        ("-1", "a GPU index must be 0 or more (got -1)", "write the GPU's index, e.g. 0, or cpu"),
    ],
)
def test_a_refused_device_is_an_error_at_its_value_with_a_hint(written, message, hint):
    text = f"loader:\n  component_key: checkpoint_loading\n  variant_key: torch\n  config:\n    device: {written}\n"
    # line 5, the value after "    device: " (12 characters)
    assert _reported(text) == [(message, "5:13", hint)]


@pytest.mark.parametrize("component", sorted(CONFIGS))
def test_the_schema_accepts_the_same_devices_as_validate(component):
    import jsonschema

    cls, _ = CONFIGS[component]
    field_schema = cls.model_json_schema()["properties"]["device"]
    accepts = jsonschema.Draft202012Validator(field_schema).is_valid
    assert [device for device in ACCEPTED + REFUSED if accepts(device)] == ACCEPTED
