"""Same YAML, same model: model/gpt2 and model_initialized against numbers taken from the reference."""

from __future__ import annotations

import math

import pytest
import torch

from tests.compat.helpers import CONFIGS, build, expected, fingerprint
from tests.tolerances import approx_float32, approx_float32_sum

IDS = (torch.arange(64) * 37 % 256).view(2, 32)


@pytest.fixture(scope="module")
def seeded_models():
    return build(CONFIGS / "gpt2_seeded.yaml")


@pytest.fixture(scope="module")
def llama_models():
    return build(CONFIGS / "gpt2_llama3_init.yaml")


@pytest.mark.parametrize(
    "config, name",
    [
        ("gpt2_seeded", "modern_model"),
        ("gpt2_seeded", "classic_model"),
        ("gpt2_llama3_init", "llama_depth"),
        ("gpt2_llama3_init", "llama_flat"),
    ],
)
def test_seeded_build_and_init_give_the_reference_weights(seeded_models, llama_models, config, name):
    reference = expected(f"{config}.json")["models"][name]
    model = (seeded_models if config == "gpt2_seeded" else llama_models)[name]
    assert sum(p.numel() for p in model.parameters()) == reference["parameters"]
    ours = fingerprint(model.state_dict())
    assert sorted(ours) == sorted(reference["state_dict"])  # same names: checkpoints load across
    for key, theirs in reference["state_dict"].items():
        mine = ours[key]
        assert mine["shape"] == theirs["shape"], key
        assert mine["first"] == theirs["first"], key  # bit-identical values
        assert mine["sum"] == pytest.approx(theirs["sum"], rel=1e-9, abs=1e-9), key
        assert mine["sumsq"] == pytest.approx(theirs["sumsq"], rel=1e-9), key
    with torch.no_grad():
        logits = model.eval()({"input_ids": IDS})["logits"]
    # the weights are bit-identical; the logits are float32 arithmetic, equal to the summation order's error
    assert logits.flatten()[:4].tolist() == approx_float32(reference["logits"]["first"], of=logits)
    assert logits.double().sum().item() == approx_float32_sum(reference["logits"]["sum"], logits)


def test_untied_head_is_named_as_in_the_reference(seeded_models):
    names = set(seeded_models["classic_model"].state_dict())
    assert "transformer.lm_head.weight" in names and "lm_head.weight" not in names
    tied = seeded_models["modern_model"]
    assert tied.transformer.wte.weight is tied.transformer.lm_head.weight


def test_auto_std_is_the_small_init_of_the_reference(seeded_models):
    # classic_model: plain init with std auto = sqrt(2 / (5 * 128)) = 0.0559..., residual projections divided by
    # sqrt(2 * n_layer) = 2, embeddings (and the untied head) sqrt(0.4).
    params = dict(seeded_models["classic_model"].named_parameters())
    auto = math.sqrt(2 / (5 * 128))
    assert params["transformer.h.0.attn.q_attn.weight"].std().item() == pytest.approx(auto, rel=0.03)
    assert params["transformer.h.1.mlp.c_fc.weight"].std().item() == pytest.approx(auto, rel=0.03)
    assert params["transformer.h.0.attn.c_proj.weight"].std().item() == pytest.approx(auto / 2, rel=0.03)
    assert params["transformer.wte.weight"].std().item() == pytest.approx(math.sqrt(0.4), rel=0.03)
    assert params["transformer.lm_head.weight"].std().item() == pytest.approx(math.sqrt(0.4), rel=0.03)


def test_llama3_like_init_scales_residual_projections_by_depth(llama_models):
    # std 0.02 / sqrt(2 (layer + 1)): layer 0 0.0141, layer 2 0.0082; without depth_init 0.02 / sqrt(6) everywhere
    depth, flat = dict(llama_models["llama_depth"].named_parameters()), dict(llama_models["llama_flat"].named_parameters())
    for layer in range(3):
        std = depth[f"transformer.h.{layer}.attn.c_proj.weight"].std().item()
        assert std == pytest.approx(0.02 / math.sqrt(2 * (layer + 1)), rel=0.06)
        assert flat[f"transformer.h.{layer}.mlp.W_2.weight"].std().item() == pytest.approx(0.02 / math.sqrt(6), rel=0.06)
    head = depth["transformer.lm_head.weight"]
    assert head.abs().max().item() <= 3 / math.sqrt(128) + 1e-6  # truncated at 3 std
    assert depth["transformer.wte.weight"].std().item() == pytest.approx(1.0, rel=0.03)


def test_llama3_like_init_refuses_a_model_with_biases():
    from modalities.models.initialization.llama3_like import Llama3Initializer
    from tests.models.helpers import build_gpt2

    with pytest.raises(ValueError, match="without biases; transformer.h.0.attention_norm.bias is a bias"):
        Llama3Initializer(num_layers=2, n_embd=32).initialize_in_place(build_gpt2(bias=True))
