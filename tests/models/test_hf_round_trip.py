"""To Hugging Face and back: every shape of model/gpt2 is written as the transformers architecture that holds it
(GPT-2, Llama, Qwen3) with its tokenizer, gives our logits there (fp32, <= 1e-5), and comes back; shapes none
holds are refused with the reasons; hub ids resolve through a Hugging Face cache the test fills."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from modalities.cli.main import main
from modalities.interop.hf_export import export_model_to_hf, import_from_hf, load_tokenizer
from modalities.interop.hf_gpt2 import HFConversionError
from modalities.models.gpt2.model import build_gpt2_model
from tests.data.conftest import SAMPLE_TOKENIZER

N_EMBD, HEADS, VOCAB = 32, 4, 2048  # the sample tokenizer's 2048 ids
ROPE = {"type_hint": "RotaryTransform", "config": {"n_embd": N_EMBD, "n_head": HEADS, "seq_length_dim": -2,
                                                    "base_freq": 10000}}
RMS = {"norm_type": "pytorch_rms_norm", "config": {"normalized_shape": N_EMBD, "eps": 1e-5}}
LAYER = {"norm_type": "layer_norm", "config": {"normalized_shape": N_EMBD, "eps": 1e-5}}


def _config(**changes) -> dict:
    config = dict(
        sample_key="input_ids", prediction_key="logits", poe_type="NOPE", sequence_length=32, vocab_size=VOCAB,
        n_layer=2, n_head_q=HEADS, n_head_kv=2, n_embd=N_EMBD, ffn_hidden=96, dropout=0.0, bias=False,
        activation_type="swiglu", attention_implementation="manual", attention_config={"qkv_transforms": [ROPE]},
        attention_norm_config=RMS, ffn_norm_config=RMS, lm_head_norm_config=RMS, use_weight_tying=False, seed=1,
    )
    config.update(changes)
    return config


SHAPES = {
    "gpt2": (_config(poe_type="ABSOLUTE", activation_type="gelu", n_head_kv=HEADS, bias=True,
                     attention_config={"qkv_transforms": []}, attention_norm_config=LAYER, ffn_norm_config=LAYER,
                     lm_head_norm_config=LAYER, use_weight_tying=True), "GPT2LMHeadModel"),
    "llama": (_config(), "LlamaForCausalLM"),
    "llama_bias_tied": (_config(bias=True, use_weight_tying=True), "LlamaForCausalLM"),
    "qwen3": (_config(attention_config={"qkv_transforms": [ROPE], "qk_norm_config": {
        "norm_type": "pytorch_rms_norm", "config": {"normalized_shape": N_EMBD // HEADS, "eps": 1e-5}}}),
        "Qwen3ForCausalLM"),
}
IDS = torch.tensor([[1, 7, 300, 2047, 5, 0, 99, 1500], [3, 3, 3, 1024, 8, 9, 10, 11]])


def _trained_like(config: dict):
    """The model with every weight moved off its init (q/k norm scales kept equal within a rotation pair, as
    Qwen3's order of norm and RoPE requires; see interop/hf_llama.py)."""
    model = build_gpt2_model(**config).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(("q_norm.weight", "k_norm.weight")):
                half = 1 + 0.2 * torch.randn(parameter.shape[0] // 2, generator=generator)
                parameter.copy_(torch.cat([half, half]))
            else:
                parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    return model


def _logits(model, ids=IDS) -> torch.Tensor:
    with torch.no_grad():
        return model({"input_ids": ids})["logits"]


@pytest.mark.parametrize("shape", SHAPES)
def test_export_gives_our_logits_and_the_tokenizer_and_comes_back(tmp_path, shape):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from modalities.data.tokenizers import PreTrainedHFTokenizer

    config, architecture = SHAPES[shape]
    ours = _trained_like(config)
    out, written_as = export_model_to_hf(ours, tmp_path / "hf", load_tokenizer(SAMPLE_TOKENIZER))
    hf = AutoModelForCausalLM.from_pretrained(out, local_files_only=True).eval()
    assert type(hf).__name__ == architecture and written_as in architecture.lower()
    with torch.no_grad():
        theirs = hf(IDS).logits
    assert (theirs - _logits(ours)).abs().max().item() <= 1e-5

    # The tokenizer went along: it encodes as ours does, and its ids are in the model's configs.
    text = "The old miller carried the wooden bridge. Café <|endoftext|>"
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert tokenizer(text)["input_ids"] == PreTrainedHFTokenizer(str(SAMPLE_TOKENIZER)).tokenize(text)
    assert len(tokenizer) == VOCAB
    saved = json.loads((out / "config.json").read_text())
    assert saved["eos_token_id"] == tokenizer.eos_token_id is not None
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == tokenizer.eos_token_id

    # And back: the imported model/gpt2 config and weights give the same logits again.
    imported_config, state = import_from_hf(out)
    back = build_gpt2_model(**{**imported_config, "attention_implementation": "manual"}).eval()
    back.load_state_dict(state)
    assert (_logits(back) - theirs).abs().max().item() <= 1e-5


def test_shapes_no_architecture_holds_are_refused_with_the_reasons(tmp_path):
    rope_gelu = build_gpt2_model(**_config(activation_type="gelu"))
    with pytest.raises(HFConversionError) as refused:
        export_model_to_hf(rope_gelu, tmp_path / "hf")
    message = str(refused.value)
    assert "as GPT-2" in message and "RotaryTransform (RoPE)" in message
    assert "as Llama/Qwen3" in message and "activation_type is gelu; Llama and Qwen3 have a SwiGLU MLP" in message
    biased_rms = build_gpt2_model(**_config(attention_norm_config={"norm_type": "rms_norm", "config": {
        "ndim": N_EMBD, "epsilon": 1e-5, "bias": True}}))
    with pytest.raises(HFConversionError, match=r"RMSNorm with a bias \(h\.0\.attention_norm"):
        export_model_to_hf(biased_rms, tmp_path / "hf2")
    assert not (tmp_path / "hf").exists() and not (tmp_path / "hf2").exists()


def test_a_trained_qk_norm_without_a_qwen3_form_is_refused(tmp_path):
    config, _ = SHAPES["qwen3"]
    model = _trained_like(config)
    with torch.no_grad():
        model.blocks[1].attn.k_norm.weight[0] += 0.5  # the two features of one rotation now scaled differently
    with pytest.raises(HFConversionError, match=r"h\.1\.attn\.k_norm: this model has no Qwen3 form"):
        export_model_to_hf(model, tmp_path / "hf")


def test_a_tokenizer_larger_than_the_vocabulary_is_refused(tmp_path):
    model = build_gpt2_model(**_config(vocab_size=1000))
    with pytest.raises(HFConversionError, match="the tokenizer has 2048 ids but the model's vocab_size is 1000"):
        export_model_to_hf(model, tmp_path / "hf", load_tokenizer(SAMPLE_TOKENIZER))


def _checkpoint_config(tmp_path: Path, config: dict, state: dict) -> Path:
    """A training-style config whose model/checkpointed loads ``state`` (a .pt), with a tokenizer component."""
    from modalities.config.dump import dump_yaml

    torch.save(state, tmp_path / "weights.pt")
    text = dump_yaml({
        "model_raw": {"component_key": "model", "variant_key": "gpt2", "config": config},
        "model": {"component_key": "model", "variant_key": "checkpointed", "config": {
            "model": {"instance_key": "model_raw", "pass_type": "BY_REFERENCE"},
            "checkpoint_loading": {"component_key": "checkpoint_loading", "variant_key": "torch",
                                   "config": {"device": "cpu"}},
            "checkpoint_path": str(tmp_path / "weights.pt")}},
        "tokenizer": {"component_key": "tokenizer", "variant_key": "pretrained_hf_tokenizer",
                      "config": {"pretrained_model_name_or_path": str(SAMPLE_TOKENIZER)}},
    })
    path = tmp_path / "export.yaml"
    path.write_text(text)
    return path


def test_the_cli_round_trip_with_the_configs_tokenizer_and_set(tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    from modalities import Main

    config, _ = SHAPES["llama"]
    ours = _trained_like(config)
    source = _checkpoint_config(tmp_path, config, ours.state_dict())
    # --set reaches the exported model: the same weights, read as a model with another RoPE base.
    assert main(["convert", "to-hf", str(source), str(tmp_path / "hf"),
                 "--set", "model_raw.config.attention_config.qkv_transforms.0.config.base_freq=500000"]) == 0
    out = capsys.readouterr().out
    assert "wrote a transformers llama model to" in out and f"and the tokenizer of {SAMPLE_TOKENIZER}" in out
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", local_files_only=True)
    assert hf.config.rope_parameters["rope_theta"] == 500000 if hasattr(hf.config, "rope_parameters") else True
    assert (tmp_path / "hf" / "tokenizer.json").is_file()

    assert main(["convert", "from-hf", str(tmp_path / "hf"), str(tmp_path / "back.pt")]) == 0
    capsys.readouterr()
    # The written .yaml builds the model; loaded with the .pt it gives the exported model's logits.
    yaml_text = (tmp_path / "back.yaml").read_text()
    (tmp_path / "load.yaml").write_text(yaml_text + f"""
model:
  component_key: model
  variant_key: checkpointed
  config:
    model: {{instance_key: model_raw, pass_type: BY_REFERENCE}}
    checkpoint_loading: {{component_key: checkpoint_loading, variant_key: torch, config: {{device: cpu}}}}
    checkpoint_path: {tmp_path / "back.pt"}
""")
    loaded = Main(config_path=tmp_path / "load.yaml").build_components()["model"].eval()
    with torch.no_grad():
        assert (_logits(loaded) - hf.eval()(IDS).logits).abs().max().item() <= 1e-5


def _fill_cache(cache: Path, repo_id: str, folder: Path) -> Path:
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<commit>/files}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    shutil.copytree(folder, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def test_hub_ids_resolve_through_the_cache_offline(tmp_path, monkeypatch):
    import huggingface_hub.constants

    from modalities.data.errors import DataError
    from modalities.data.tokenizers import PreTrainedHFTokenizer

    cache = tmp_path / "cache"
    snapshot = _fill_cache(cache, "acme/tiny-tok", SAMPLE_TOKENIZER)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer = PreTrainedHFTokenizer("acme/tiny-tok")
    assert tokenizer.path == snapshot and tokenizer.vocab_size == VOCAB
    with pytest.raises(DataError, match="acme/absent: not a local path, and not in the Hugging Face cache"):
        PreTrainedHFTokenizer("acme/absent")

    # A model exported there imports by its id too.
    export_model_to_hf(_trained_like(SHAPES["llama"][0]), tmp_path / "hf")
    _fill_cache(cache, "acme/tiny-llama", tmp_path / "hf")
    config, _ = import_from_hf("acme/tiny-llama")
    assert config["n_head_kv"] == 2 and config["activation_type"] == "swiglu"


def test_a_hub_model_component_from_the_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    from modalities.models.huggingface.config import HuggingFacePretrainedModelConfig
    from modalities.models.huggingface.model import HuggingFacePretrainedModel
    from tests.models.helpers import build_from_config

    export_model_to_hf(_trained_like(SHAPES["llama"][0]), tmp_path / "hf")
    _fill_cache(tmp_path / "cache", "acme/tiny-llama", tmp_path / "hf")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    config = HuggingFacePretrainedModelConfig(
        model_type="AutoModelForCausalLM", model_name="acme/tiny-llama", prediction_key="logits",
        huggingface_prediction_subscription_key="logits", sample_key="input_ids",
    )
    model = build_from_config(HuggingFacePretrainedModel, config)
    assert type(model.huggingface_model).__name__ == "LlamaForCausalLM"
