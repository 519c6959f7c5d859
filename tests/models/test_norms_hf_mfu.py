"""layer_norm components, model/huggingface_pretrained_model and mfu_calculator/gpt2."""

from __future__ import annotations

import re

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from modalities.models.huggingface.config import HuggingFacePretrainedModelConfig
from modalities.models.huggingface.model import HuggingFacePretrainedModel
from modalities.models.mfu.config import GPT2MFUCalculatorConfig
from modalities.models.mfu.gpt2_mfu import GPT2MFUCalculator, peak_flops_of_device_name
from modalities.models.norms import layer_norms
from modalities.models.norms.config import LayerNormConfig, PytorchRMSLayerNormConfig, RMSLayerNormConfig
from tests.models.helpers import build_from_config, build_gpt2


def test_rms_norm_matches_torch_rms_norm_plus_bias():
    torch.manual_seed(0)
    ours = build_from_config(layer_norms.rms_norm, RMSLayerNormConfig(ndim=8, epsilon=1e-5, bias=True))
    reference = build_from_config(layer_norms.pytorch_rms_norm, PytorchRMSLayerNormConfig(normalized_shape=8, eps=1e-5))
    with torch.no_grad():
        ours.weight.normal_()
        ours.bias.normal_()
        reference.weight.copy_(ours.weight)
    x = torch.randn(3, 5, 8)
    torch.testing.assert_close(ours(x), reference(x) + ours.bias)


def test_layer_norm_component_is_torch_layer_norm():
    norm = build_from_config(layer_norms.layer_norm, LayerNormConfig(normalized_shape=8, eps=1e-5, bias=False))
    assert isinstance(norm, torch.nn.LayerNorm) and norm.bias is None and norm.eps == 1e-5
    x = torch.randn(4, 8)
    torch.testing.assert_close(norm(x), torch.nn.functional.layer_norm(x, (8,), eps=1e-5))


@pytest.fixture
def saved_tiny_hf_gpt2(tmp_path):
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=2, n_head=2)).eval()
    model.save_pretrained(tmp_path / "tiny")
    return model, tmp_path / "tiny"


def test_huggingface_pretrained_model_returns_the_subscribed_output(saved_tiny_hf_gpt2):
    reference, path = saved_tiny_hf_gpt2
    config = HuggingFacePretrainedModelConfig(
        model_type="AutoModelForCausalLM",
        model_name=path,
        prediction_key="logits",
        huggingface_prediction_subscription_key="logits",
        sample_key="input_ids",
    )
    model = build_from_config(HuggingFacePretrainedModel, config).eval()
    ids = torch.randint(0, 50, (2, 8))
    with torch.no_grad():
        torch.testing.assert_close(model({"input_ids": ids})["logits"], reference(input_ids=ids).logits)
    for name, _ in model.named_parameters():
        groups = [g for g, rs in model.weight_decay_groups.items() if any(re.search(r, name) for r in rs)]
        assert len(groups) == 1, (name, groups)
    assert {b.__name__ for b in model.block_classes()} == {"GPT2Block"}


def test_huggingface_pretrained_model_needs_a_local_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        HuggingFacePretrainedModel("AutoModelForCausalLM", tmp_path / "gpt2", "logits", "logits", "input_ids")


def test_mfu_formula_against_a_hand_computation():
    n_layer, n_embd, seq, vocab = 2, 32, 16, 64
    ffn = 4 * n_embd
    model = build_gpt2(n_layer=n_layer, n_embd=n_embd, sequence_length=seq, vocab_size=vocab, use_weight_tying=False)
    per_block = (
        4 * (n_embd * n_embd + n_embd)  # q, k, v, c_proj with biases
        + (n_embd * ffn + ffn)
        + (ffn * n_embd + n_embd)  # c_fc, c_proj
        + 2 * 2 * n_embd  # two LayerNorms
    )
    matmul_params = n_layer * per_block + 2 * n_embd + vocab * n_embd  # + final norm + lm_head; no wte, wpe
    config = GPT2MFUCalculatorConfig(
        n_layer=n_layer, sequence_length=seq, n_embd=n_embd, world_size=2, wrapped_model=model
    )
    calculator = build_from_config(GPT2MFUCalculator, config)
    assert calculator.num_matmul_parameters == matmul_params
    assert calculator.flops_per_token == 6 * matmul_params + 12 * n_layer * seq * n_embd

    on_h100 = GPT2MFUCalculator(n_layer, seq, n_embd, 2, model, peak_flops_per_device=989e12)
    samples_per_second = 1000.0
    expected_mfu = samples_per_second * seq * on_h100.flops_per_token / (2 * 989e12)
    assert on_h100.compute(samples_per_second) == pytest.approx(expected_mfu)
    assert float(on_h100.compute(torch.tensor(samples_per_second))) == pytest.approx(expected_mfu)
    if not torch.cuda.is_available():
        report = calculator.throughput(samples_per_second)
        assert report["mfu"] is None and calculator.compute(samples_per_second) is None
        assert report["tokens_per_second"] == samples_per_second * seq


def test_tied_embedding_counts_once_as_the_output_projection():
    tied, untied = build_gpt2(use_weight_tying=True), build_gpt2(use_weight_tying=False)
    count = lambda m: GPT2MFUCalculator(2, 16, 32, 1, m).num_matmul_parameters  # noqa: E731
    assert count(tied) == count(untied)


@pytest.mark.parametrize(
    "name, peak",
    [("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H200", 989e12), ("Tesla T4", None)],
)
def test_peak_flops_by_device_name(name, peak):
    assert peak_flops_of_device_name(name) == peak
