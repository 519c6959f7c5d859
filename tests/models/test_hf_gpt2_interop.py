"""Our GPT-2 against transformers' GPT-2: weights copied across give the same logits, in both directions."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

from modalities.interop.hf_gpt2 import (
    HFConversionError,
    export_state_dict_to_hf,
    export_to_hf,
    hf_gpt2_config_from_gpt2_config,
    load_hf_gpt2_weights,
)
from modalities.models.gpt2.config import GPT2LLMConfig
from tests.models.helpers import build_gpt2, gpt2_config_dict, rope_overrides
from tests.tolerances import assert_close_float32

N_EMBD, N_LAYER, N_HEAD, VOCAB, SEQ = 32, 2, 4, 64, 16


def tiny_hf_gpt2(tie: bool = True) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=VOCAB,
        n_positions=SEQ,
        n_embd=N_EMBD,
        n_layer=N_LAYER,
        n_head=N_HEAD,
        activation_function="gelu",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,
        tie_word_embeddings=tie,
    )
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # HF zero-initializes biases and LayerNorm shifts; make every mapped tensor matter
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


def random_batch() -> torch.Tensor:
    return torch.randint(0, VOCAB, (3, SEQ), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("tie", [True, False])
def test_hf_weights_loaded_into_ours_give_the_same_logits(tie):
    hf = tiny_hf_gpt2(tie)
    ours = build_gpt2(use_weight_tying=tie).eval()
    load_hf_gpt2_weights(ours, hf)
    ids = random_batch()
    with torch.no_grad():
        expected = hf(input_ids=ids).logits
        got = ours({"input_ids": ids})["logits"]
    assert_close_float32(got, expected)


def test_exported_folder_loads_with_from_pretrained_and_gives_the_same_logits(tmp_path):
    ours = build_gpt2(seed=3).eval()
    with torch.no_grad():  # non-trivial biases and norm parameters
        for name, p in ours.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    out_dir = export_to_hf(ours, tmp_path / "hf_model")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary folder left behind"
    hf = AutoModelForCausalLM.from_pretrained(out_dir, local_files_only=True).eval()
    ids = random_batch()
    with torch.no_grad():
        assert_close_float32(hf(input_ids=ids).logits, ours({"input_ids": ids})["logits"])


def test_configurations_with_an_exact_hf_form_round_trip(tmp_path):
    # no biases -> zero biases; NOPE -> zero position table; LayerNorm without bias -> zero shift
    norm = {"norm_type": "layer_norm", "config": {"normalized_shape": N_EMBD, "eps": 1e-5, "bias": False}}
    ours = build_gpt2(
        bias=False, poe_type="NOPE", attention_norm_config=norm, ffn_norm_config=norm, lm_head_norm_config=norm
    ).eval()
    hf = AutoModelForCausalLM.from_pretrained(export_to_hf(ours, tmp_path / "m"), local_files_only=True).eval()
    ids = random_batch()
    with torch.no_grad():
        assert_close_float32(hf(input_ids=ids).logits, ours({"input_ids": ids})["logits"])
    reloaded = build_gpt2(
        bias=False, poe_type="NOPE", attention_norm_config=norm, ffn_norm_config=norm, lm_head_norm_config=norm, seed=9
    ).eval()
    load_hf_gpt2_weights(reloaded, hf)
    with torch.no_grad():
        torch.testing.assert_close(reloaded({"input_ids": ids})["logits"], ours({"input_ids": ids})["logits"])


def test_loading_nonzero_hf_biases_into_a_bias_free_model_is_refused():
    with pytest.raises(HFConversionError, match="c_attn.bias.*bias"):
        load_hf_gpt2_weights(build_gpt2(bias=False), tiny_hf_gpt2())


def test_loading_tanh_gelu_weights_warns_that_logits_will_differ():
    hf = tiny_hf_gpt2()
    hf.config.activation_function = "gelu_new"
    with pytest.warns(UserWarning, match="exact gelu"):
        load_hf_gpt2_weights(build_gpt2(), hf)


def test_export_refuses_an_existing_nonempty_folder(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(FileExistsError, match="taken"):
        export_to_hf(build_gpt2(), tmp_path / "taken")


def test_configurations_hf_gpt2_cannot_represent_are_named():
    config = GPT2LLMConfig(
        **gpt2_config_dict(
            **rope_overrides(),
            n_head_kv=2,
            activation_type="swiglu",
            lm_head_norm_config={"norm_type": "rms_norm", "config": {"ndim": N_EMBD}},
        )
    )
    with pytest.raises(HFConversionError) as error:
        hf_gpt2_config_from_gpt2_config(config)
    message = str(error.value)
    for expected in ("swiglu", "grouped-query", "RoPE", "lm_head_norm"):
        assert expected in message


def test_hf_config_from_our_config_matches_the_architecture():
    hf_config = hf_gpt2_config_from_gpt2_config(GPT2LLMConfig(**gpt2_config_dict()))
    assert (hf_config.n_embd, hf_config.n_layer, hf_config.n_head, hf_config.n_inner) == (
        N_EMBD,
        N_LAYER,
        N_HEAD,
        4 * N_EMBD,
    )
    assert (hf_config.vocab_size, hf_config.n_positions, hf_config.activation_function) == (VOCAB, SEQ, "gelu")


def test_a_config_and_state_dict_export_without_building_the_model_twice(tmp_path):
    config = GPT2LLMConfig(**gpt2_config_dict(seed=5))
    ours = build_gpt2(seed=5).eval()
    state_dict = {k: v for k, v in ours.state_dict().items() if k != "lm_head.weight"}
    hf = AutoModelForCausalLM.from_pretrained(
        export_state_dict_to_hf(config, state_dict, tmp_path / "m"), local_files_only=True
    ).eval()
    ids = random_batch()
    with torch.no_grad():
        assert_close_float32(hf(input_ids=ids).logits, ours({"input_ids": ids})["logits"])
    with pytest.raises(HFConversionError, match="missing.*c_fc"):
        broken = {k: v for k, v in state_dict.items() if "h.1.mlp.c_fc" not in k}
        export_state_dict_to_hf(config, broken, tmp_path / "other")
