"""layer_norm components, model/huggingface_pretrained_model and mfu_calculator/gpt2."""

from __future__ import annotations

import re
from pathlib import Path

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
    [
        # names as torch.cuda.get_device_name() reports them; peaks from the vendors' datasheets (dense bf16)
        ("NVIDIA A100-SXM4-80GB", 312e12),
        ("NVIDIA A100 80GB PCIe", 312e12),
        ("NVIDIA H100 80GB HBM3", 989e12),
        ("NVIDIA H100 PCIe", 756e12),
        ("NVIDIA H100 NVL", 835e12),
        ("NVIDIA H200", 989e12),
        ("NVIDIA GH200 480GB", 989e12),
        ("NVIDIA B200", 2250e12),
        ("NVIDIA GB200", 2500e12),
        ("NVIDIA L40S", 362e12),
        ("NVIDIA L40", 181e12),
        ("NVIDIA L4", 121e12),
        ("NVIDIA A10", 125e12),
        ("NVIDIA A40", 150e12),
        ("AMD Instinct MI300X", 1307e12),
        ("AMD Instinct MI300A", 981e12),
        ("AMD Instinct MI325X", 1307e12),
        ("AMD Instinct MI250X/MI250", 362e12),
        ("AMD Instinct MI210", 181e12),
        ("Tesla T4", None),
        ("NVIDIA A10G", None),  # not the A10: another part
        ("NVIDIA GeForce RTX 4090", None),
    ],
)
def test_peak_flops_by_device_name(name, peak):
    assert peak_flops_of_device_name(name) == peak


def test_an_unknown_gpu_is_named_in_a_warning_and_a_given_peak_wins(monkeypatch):
    model = build_gpt2(use_weight_tying=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA Future X1")
    with pytest.warns(UserWarning, match=r"MFU is not computed: the bf16 peak of 'NVIDIA Future X1' is not in .*"
                                         r"set mfu_calculator.config.peak_flops_per_device"):
        unknown = GPT2MFUCalculator(2, 16, 32, 1, model)
    assert unknown.peak_flops is None and unknown.peak_source is None
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H100 PCIe")
    known = GPT2MFUCalculator(2, 16, 32, 4, model)
    assert (known.peak_flops, known.peak_source) == (4 * 756e12, "device")
    given = GPT2MFUCalculator(2, 16, 32, 4, model, peak_flops_per_device=1e15)
    assert (given.peak_flops, given.peak_source) == (4e15, "config")


def test_a_peak_from_the_config_gives_mfu_on_cpu(tmp_path):
    import json

    from modalities.cli.main import main

    quickstart = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"
    code = main(["train", str(quickstart), "--experiments-root", str(tmp_path), "--experiment-id", "m",
                 "--set", "mfu_calculator.config.peak_flops_per_device=1.0e12",
                 "--set", "settings.training_target.num_target_steps=4",
                 "--set", "settings.intervals.training_log_interval_in_steps=2",
                 "--set", "settings.intervals.evaluation_interval_in_steps=4",
                 "--set", "settings.intervals.checkpointing_interval_in_steps=4"])
    assert code == 0
    # The quick start's model by hand (d=128, ffn 512, 2 layers, vocab 2048, T=128, biases, tied head):
    # per block q/k/v/c_proj 4*(128*128+128) + c_fc 128*512+512 + c_proj 512*128+128 + two norms 2*256
    per_block = 4 * (128 * 128 + 128) + (128 * 512 + 512) + (512 * 128 + 128) + 2 * 256
    matmul_params = 2 * per_block + 256 + 2048 * 128  # + final norm + the (tied) output projection
    flops_per_token = 6 * matmul_params + 12 * 2 * 128 * 128
    assert flops_per_token == 4_346_880
    records = [json.loads(line) for line in (tmp_path / "m" / "results.jsonl").read_text().splitlines()]
    train = [r["throughput_metrics"] for r in records if r.get("dataloader_tag") == "train"]
    assert len(train) == 2
    for throughput in train:
        assert throughput["mfu"] == pytest.approx(throughput["tokens/s"] * flops_per_token / 1e12, rel=1e-9)


def _folder_with_code(tmp_path, marker):
    """A model folder whose config maps AutoModelForCausalLM to a module of its own, which leaves a marker file
    when it is imported (as a hostile one could do anything)."""
    import json

    folder = tmp_path / "custom"
    GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=1, n_head=2)).save_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({
        "model_type": "gpt2", "vocab_size": 50, "n_positions": 16, "n_embd": 16, "n_layer": 1, "n_head": 2,
        "architectures": ["CustomModel"], "auto_map": {"AutoModelForCausalLM": "modeling_custom.CustomModel"},
    }))
    (folder / "modeling_custom.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\n"
        "from transformers import GPT2LMHeadModel\nclass CustomModel(GPT2LMHeadModel):\n    pass\n"
    )
    return folder


@pytest.mark.parametrize("trust", [False, True])
def test_code_in_a_model_folder_runs_only_with_the_named_field(tmp_path, trust):
    marker = tmp_path / "ran"
    folder = _folder_with_code(tmp_path, marker)
    config = HuggingFacePretrainedModelConfig(
        model_type="AutoModelForCausalLM", model_name=folder, prediction_key="logits",
        huggingface_prediction_subscription_key="logits", sample_key="input_ids", trust_remote_code=trust,
    )
    model = build_from_config(HuggingFacePretrainedModel, config)
    # Without the field transformers ignores the folder's code and builds its own GPT-2 class.
    assert type(model.huggingface_model).__name__ == ("CustomModel" if trust else "GPT2LMHeadModel")
    assert marker.exists() == trust


@pytest.mark.parametrize("key", ["trust_remote_code", "weights_only", "local_files_only"])
def test_kwargs_cannot_carry_unsafe_loading_options(tmp_path, capsys, key):
    from modalities.cli.main import main

    path = tmp_path / "c.yaml"
    path.write_text(f"""model:
  component_key: model
  variant_key: huggingface_pretrained_model
  config:
    model_type: AutoModelForCausalLM
    model_name: {tmp_path}
    prediction_key: logits
    huggingface_prediction_subscription_key: logits
    sample_key: input_ids
    kwargs: {{{key}: true, torch_dtype: float32}}
""")
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"c.yaml:10:13: error: model.config.kwargs: Value error, kwargs may not set {key}" in err


def test_a_mistake_inside_a_norm_config_is_placed_at_its_line(tmp_path, capsys):
    from modalities.cli.main import main

    repo = Path(__file__).resolve().parents[2]
    text = (repo / "configs" / "quickstart.yaml").read_text().replace(
        "${modalities_env:config_folder_path}/../data", str(repo / "data"))
    first = text.index("        normalized_shape:")
    text = text[:first] + text[first:].replace("normalized_shape:", "normalized_shap:", 1)
    config = tmp_path / "typo.yaml"
    config.write_text(text)
    line = text[:first].count("\n") + 1
    assert main(["validate", str(config)]) == 1
    out = capsys.readouterr()
    report = out.out + out.err
    assert (f"{config}:{line}:9: error: model_raw.config.attention_norm_config.config.normalized_shap: unknown "
            "field 'normalized_shap' for LayerNormConfig") in report
    assert "did you mean 'normalized_shape'?" in report
    assert "missing required field" not in report  # explained by the typo: one error, not two
    assert f"{config}: 1 error" in report
