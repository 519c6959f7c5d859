"""To Hugging Face and back: every shape of model/gpt2 is written as the transformers architecture that holds it
(GPT-2, Llama, Qwen3, StableLM) with its tokenizer, gives our logits there (fp32, <= 1e-5), and comes back; shapes
none holds are refused with the reasons, or, when asked, written with their own modelling code, which computes
what transformers' own architectures compute; hub ids resolve through a Hugging Face cache the test fills."""

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
from tests.compat.helpers import checkpointed_model_yaml
from tests.data.conftest import SAMPLE_TOKENIZER

N_EMBD, HEADS, VOCAB = 32, 4, 2048  # the sample tokenizer's 2048 ids
ROPE = {"type_hint": "RotaryTransform", "config": {"n_embd": N_EMBD, "n_head": HEADS, "seq_length_dim": -2,
                                                    "base_freq": 10000}}
RMS = {"norm_type": "pytorch_rms_norm", "config": {"normalized_shape": N_EMBD, "eps": 1e-5}}
LAYER = {"norm_type": "layer_norm", "config": {"normalized_shape": N_EMBD, "eps": 1e-5}}
LAYER_BIASED = {"norm_type": "layer_norm", "config": {"normalized_shape": N_EMBD, "eps": 1e-5, "bias": True}}


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
    # The reference's conversion test and getting-started shape: LayerNorm (with shift), RoPE, SwiGLU, no biases.
    "stablelm": (_config(attention_norm_config=LAYER_BIASED, ffn_norm_config=LAYER_BIASED,
                         lm_head_norm_config=LAYER_BIASED), "StableLmForCausalLM"),
    # LayerNorms without shift or without any affine: StableLM's with unit scale and zero shift; tied embeddings.
    "stablelm_plain_norms_tied": (_config(
        attention_norm_config={"norm_type": "layer_norm", "config": {"normalized_shape": N_EMBD, "eps": 1e-5,
                                                                     "elementwise_affine": False}},
        ffn_norm_config={"norm_type": "layer_norm", "config": {"normalized_shape": N_EMBD, "eps": 1e-5, "bias": False}},
        lm_head_norm_config=LAYER_BIASED, use_weight_tying=True), "StableLmForCausalLM"),
}
# Shapes no transformers architecture holds; written with their own modelling code when asked.
REMOTE_SHAPES = {
    # the reference's lorem-ipsum configs: biases on every linear, which StableLM lacks on o_proj and the MLP
    "lorem_ipsum": _config(attention_norm_config=LAYER_BIASED, ffn_norm_config=LAYER_BIASED,
                           lm_head_norm_config=LAYER_BIASED, bias=True),
    "rope_gelu": _config(activation_type="gelu", use_weight_tying=True),
    "qk_layer_norm": _config(attention_norm_config=LAYER_BIASED, ffn_norm_config=LAYER_BIASED,
                             lm_head_norm_config=LAYER_BIASED, attention_config={"qkv_transforms": [ROPE], "qk_norm_config": {
                                 "norm_type": "layer_norm", "config": {"normalized_shape": N_EMBD // HEADS, "eps": 1e-5}}}),
    "biased_rms_nope": _config(poe_type="NOPE", attention_config={"qkv_transforms": []}, attention_norm_config={
        "norm_type": "rms_norm", "config": {"ndim": N_EMBD, "epsilon": 1e-5, "bias": True}}),
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


def _assert_same_logits(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """float32 logits of the same function computed in another order: equal to ~1e-5 of their scale."""
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())


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
    assert "as StableLM" in message and "activation_type is gelu; StableLM has a SwiGLU MLP" in message
    assert "pass --remote-code" in message
    lorem_ipsum = build_gpt2_model(**REMOTE_SHAPES["lorem_ipsum"])
    with pytest.raises(HFConversionError, match=r"bias: true \(biases on every linear\); StableLM has biases on q/k/v"):
        export_model_to_hf(lorem_ipsum, tmp_path / "hf")
    biased_rms = build_gpt2_model(**_config(attention_norm_config={"norm_type": "rms_norm", "config": {
        "ndim": N_EMBD, "epsilon": 1e-5, "bias": True}}))
    with pytest.raises(HFConversionError, match=r"RMSNorm with a bias \(h\.0\.attention_norm"):
        export_model_to_hf(biased_rms, tmp_path / "hf2")
    assert not (tmp_path / "hf").exists() and not (tmp_path / "hf2").exists()


@pytest.mark.parametrize("shape", REMOTE_SHAPES)
def test_a_shape_no_architecture_holds_is_written_with_its_own_code_when_asked(tmp_path, shape):
    from transformers import AutoModelForCausalLM

    ours = _trained_like(REMOTE_SHAPES[shape])
    out, written_as = export_model_to_hf(ours, tmp_path / "hf", load_tokenizer(SAMPLE_TOKENIZER), remote_code=True)
    assert "trust_remote_code=True" in written_as
    saved = json.loads((out / "config.json").read_text())
    assert saved["auto_map"]["AutoModelForCausalLM"] == "modeling_modalities_gpt2.ModalitiesGPT2ForCausalLM"
    assert (out / "modeling_modalities_gpt2.py").is_file() and (out / "tokenizer.json").is_file()
    hf = AutoModelForCausalLM.from_pretrained(out, local_files_only=True, trust_remote_code=True).eval()
    with torch.no_grad():
        theirs = hf(IDS).logits
    _assert_same_logits(theirs, _logits(ours))

    imported_config, state = import_from_hf(out)  # read back without running the folder's code
    back = build_gpt2_model(**{**imported_config, "attention_implementation": "manual"}).eval()
    back.load_state_dict(state)
    _assert_same_logits(_logits(back), theirs)


def _save_with_own_code(model, out: Path) -> None:
    from modalities.interop.hf_remote import to_hf_remote, write_code

    to_hf_remote(model).save_pretrained(out)
    write_code(out)


@pytest.mark.parametrize("shape", ["gpt2", "llama_bias_tied", "qwen3", "stablelm_plain_norms_tied"])
def test_the_own_modelling_code_computes_what_transformers_architectures_do(tmp_path, shape):
    """The written modelling code checked against transformers' GPT-2, Llama, Qwen3 and StableLM on the shapes
    they hold (learned positions and gelu; biases, GQA, tying; q/k norm; LayerNorm without affine)."""
    from transformers import AutoModelForCausalLM

    ours = _trained_like(SHAPES[shape][0])
    export_model_to_hf(ours, tmp_path / "architecture")
    _save_with_own_code(ours, tmp_path / "own")
    architecture = AutoModelForCausalLM.from_pretrained(tmp_path / "architecture", local_files_only=True).eval()
    own = AutoModelForCausalLM.from_pretrained(tmp_path / "own", local_files_only=True, trust_remote_code=True)
    with torch.no_grad():
        _assert_same_logits(own.eval()(IDS).logits, architecture(IDS).logits)


def test_the_own_modelling_code_generates_and_reads_left_padding(tmp_path):
    from transformers import AutoModelForCausalLM

    ours = _trained_like(REMOTE_SHAPES["lorem_ipsum"])
    _save_with_own_code(ours, tmp_path / "own")
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "own", local_files_only=True, trust_remote_code=True).eval()
    prompt = IDS[:1]
    generated = hf.generate(prompt, max_new_tokens=4, do_sample=False)
    expected = prompt
    for _ in range(4):  # greedy decoding with our model, one token at a time
        expected = torch.cat([expected, _logits(ours, expected)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(generated, expected)
    # Two pad tokens on the left are invisible: the last position's logits are those of the unpadded prompt.
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        padded = hf(prompt, attention_mask=mask).logits[:, -1]
    _assert_same_logits(padded, _logits(ours, prompt[:, 2:])[:, -1])


def test_a_stablelm_with_qkv_biases_imports_with_its_logits_and_a_partial_rotation_is_refused(tmp_path):
    """A StableLM as transformers initializes it (q/k/v biases, GQA) is our bias: true model with zero o_proj and
    MLP biases; StableLM's default of rotating a quarter of each head has no model/gpt2 form."""
    from transformers import StableLmConfig, StableLmForCausalLM

    shape = {"vocab_size": VOCAB, "hidden_size": N_EMBD, "intermediate_size": 48, "num_hidden_layers": 2,
             "num_attention_heads": HEADS, "num_key_value_heads": 2, "max_position_embeddings": 32, "use_qkv_bias": True}
    torch.manual_seed(0)
    hf = StableLmForCausalLM(StableLmConfig(partial_rotary_factor=1.0, rope_theta=20000.0, **shape)).eval()
    with torch.no_grad():
        for parameter in hf.parameters():  # biases and norms off their zero/one init too
            parameter.add_(0.1 * torch.randn_like(parameter))
    hf.save_pretrained(tmp_path / "stablelm")
    config, state = import_from_hf(tmp_path / "stablelm")
    assert config["bias"] is True and config["n_head_kv"] == 2
    ours = build_gpt2_model(**{**config, "attention_implementation": "manual"}).eval()
    ours.load_state_dict(state)
    assert not ours.blocks[0].attn.c_proj.bias.any() and not ours.blocks[0].mlp.W_2.bias.any()
    with torch.no_grad():
        _assert_same_logits(_logits(ours), hf(IDS).logits)

    StableLmForCausalLM(StableLmConfig(**shape)).save_pretrained(tmp_path / "partial")
    with pytest.raises(HFConversionError, match="partial_rotary_factor 0.25: model/gpt2 rotates the whole head"):
        import_from_hf(tmp_path / "partial")


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
    (tmp_path / "load.yaml").write_text(yaml_text + checkpointed_model_yaml(tmp_path / "back.pt", "model_raw", "model"))
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
