"""Same YAML, same CoCa: the reference's parameter count, weights from a seed, and output shapes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from tests.compat.helpers import CONFIGS, build, expected, fingerprint
from tests.tolerances import approx_float32, approx_float32_sum

REFERENCE_TEST_CONFIG = Path(__file__).parent / "reference_configs" / "tests" / "models" / "coca" / "coca_config.yaml"


@pytest.fixture(scope="module")
def models():
    return build(CONFIGS / "coca_seeded.yaml")


def _inputs() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {"images": torch.randn(2, 3, 16, 16, generator=generator), "input_ids": torch.randint(0, 50, (2, 9), generator=generator)}


@pytest.mark.parametrize("activation", ["gelu", "swiglu"])
def test_seeded_coca_has_the_reference_weights_and_outputs(models, activation):
    reference = expected("coca_seeded.json")["models"][activation]
    model = models[f"coca_{activation}"]
    assert sum(p.numel() for p in model.parameters()) == reference["parameters"]
    ours = fingerprint(model.state_dict())
    assert sorted(ours) == sorted(reference["state_dict"])
    for key, theirs in reference["state_dict"].items():
        assert ours[key]["first"] == theirs["first"], key
        assert ours[key]["sumsq"] == pytest.approx(theirs["sumsq"], rel=1e-9), key
    with torch.no_grad():
        outputs = model.eval()(_inputs())
    for key, theirs in reference["outputs"].items():
        assert list(outputs[key].shape) == theirs["shape"], key  # vision_cls and text_cls are (B, 1, d)
        assert outputs[key].flatten()[:4].tolist() == approx_float32(theirs["first"], of=outputs[key]), key
        assert outputs[key].double().sum().item() == approx_float32_sum(theirs["sum"], outputs[key]), key


def test_the_reference_coca_test_config_validates_and_has_its_parameter_count():
    # 184,502,784 parameters: the number the reference's own CoCa test config builds
    from modalities.registry import default_registry

    config = yaml.safe_load(REFERENCE_TEST_CONFIG.read_text())
    spec = default_registry().get("model", "coca")
    validated = spec.config_class().model_validate(config)
    with torch.device("meta"):
        model = spec.builder_callable()(**{name: getattr(validated, name) for name in type(validated).model_fields})
    assert sum(p.numel() for p in model.parameters()) == 184_502_784
