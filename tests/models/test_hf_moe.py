"""model/moe to transformers' Qwen3-MoE and back. The export loads with AutoModelForCausalLM and gives our logits
(fp32, relative 1e-5 of their scale) wherever our model drops no slot; what has no counterpart (capacity, router
temperature, noise, dropout) does what interop/hf_qwen3_moe.py says; from-hf reads a folder back to the same
weights, and a Qwen3-MoE transformers made itself to its logits; folders model/moe cannot hold are refused with
the reason. The checkpoint of a training run converts in tests/training/test_expert_parallel.py."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors import safe_open

from modalities.cli.main import main
from modalities.interop.hf_export import export_model_to_hf, import_model_from_hf, load_tokenizer
from modalities.interop.hf_gpt2 import HFConversionError
from modalities.models.moe.model import QwenModel, build_moe_model
from tests.compat.helpers import build
from tests.data.conftest import SAMPLE_TOKENIZER
from tests.models.test_moe import tiny_config

IDS = torch.tensor([[1, 7, 30, 63, 5, 0, 9, 15, 2, 44, 44, 44, 8, 9, 10, 11],
                    [3, 3, 3, 62, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]])


def trained_like(**overrides) -> QwenModel:
    """A tiny model/moe (4 experts, top 2, no slot dropped unless overridden) with every weight moved off its init
    (norm scales included), in eval mode."""
    model = build_moe_model(**tiny_config(seed=0, **overrides))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


def logits(model, ids=IDS) -> torch.Tensor:
    with torch.no_grad():
        return model({"input_ids": ids})["logits"] if isinstance(model, QwenModel) else model(input_ids=ids).logits


def assert_close_logits(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """float32 logits of the same function computed in another order: relative 1e-5 of their scale."""
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())


def load_hf(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()


@pytest.mark.parametrize("tie", [False, True])
def test_export_loads_in_transformers_with_our_logits(tmp_path, tie):
    ours = trained_like(tie_embeddings=tie, rope_base=5000.0, norm_eps=1e-5, moe_aux_loss_coef=0.02)
    out, architecture = export_model_to_hf(ours, tmp_path / "hf")
    hf = load_hf(out)
    assert architecture == "qwen3_moe" and type(hf).__name__ == "Qwen3MoeForCausalLM"
    assert_close_logits(logits(hf), logits(ours))
    saved = json.loads((out / "config.json").read_text())
    # tiny_config: vocab 64, 16 positions, d_model 32, 4 heads of 8, 2 kv heads, 2 layers, d_ff 48, 4 experts of 16
    expected = {
        "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "vocab_size": 64,
        "max_position_embeddings": 16, "hidden_size": 32, "num_attention_heads": 4, "head_dim": 8,
        "num_key_value_heads": 2, "num_hidden_layers": 2, "intermediate_size": 48, "moe_intermediate_size": 16,
        "num_experts": 4, "num_local_experts": 4, "num_experts_per_tok": 2, "norm_topk_prob": True,
        "decoder_sparse_step": 1, "mlp_only_layers": [], "rms_norm_eps": 1e-5, "rope_theta": 5000.0,
        "tie_word_embeddings": tie, "hidden_act": "silu", "attention_bias": False, "use_sliding_window": False,
        "router_aux_loss_coef": 0.02,
    }
    assert {key: saved.get(key) for key in expected} == expected
    assert saved["rope_parameters"] == {"rope_type": "default", "rope_theta": 5000.0}
    assert torch.equal(hf.lm_head.weight, ours.lm_head.weight)
    assert (hf.lm_head.weight is hf.model.embed_tokens.weight) == tie


def test_the_weights_are_saved_one_matrix_per_expert_as_transformers_4_reads_them(tmp_path):
    ours = trained_like()
    out, _ = export_model_to_hf(ours, tmp_path / "hf")
    block = ours.layers["1"].ffn
    with safe_open(out / "model.safetensors", "pt") as f:
        assert "model.layers.1.mlp.experts.gate_up_proj" not in f.keys()
        for e in range(4):
            prefix = f"model.layers.1.mlp.experts.{e}."
            # w3 (silu(w1 x) * w2 x): w1 gates, w2 goes up, w3 comes down
            assert torch.equal(f.get_tensor(prefix + "gate_proj.weight"), block.experts.w1[e])
            assert torch.equal(f.get_tensor(prefix + "up_proj.weight"), block.experts.w2[e])
            assert torch.equal(f.get_tensor(prefix + "down_proj.weight"), block.experts.w3[e])
        assert torch.equal(f.get_tensor("model.layers.1.mlp.gate.weight"), block.router.weight)
        assert torch.equal(f.get_tensor("model.layers.0.input_layernorm.weight"), ours.layers["0"].pre_attn_norm.weight)


def test_the_tokenizer_goes_along(tmp_path):
    from transformers import AutoTokenizer

    ours = trained_like(vocab_size=2048)  # the sample tokenizer's ids
    out, _ = export_model_to_hf(ours, tmp_path / "hf", load_tokenizer(SAMPLE_TOKENIZER))
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert len(tokenizer) == 2048
    assert json.loads((out / "config.json").read_text())["eos_token_id"] == tokenizer.eos_token_id is not None
    ids = torch.tensor([tokenizer("The old miller carried the wooden bridge.")["input_ids"][:16]])
    assert_close_logits(logits(load_hf(out), ids), logits(ours, ids))


def test_over_capacity_the_export_computes_every_slot(tmp_path):
    """capacity max(ceil(0.5 x 32 / 4), 1) = 4 slots per expert, 16 of 64 routed: ours drops, transformers cannot;
    the export equals our model with the same weights and a capacity that keeps every slot (factor = experts)."""
    dropping = trained_like(moe_capacity_factor=0.5, moe_overflow_policy="drop")
    out, _ = export_model_to_hf(dropping, tmp_path / "hf")
    dropless = build_moe_model(**tiny_config(moe_capacity_factor=4.0)).eval()
    dropless.load_state_dict(dropping.state_dict())
    theirs = logits(load_hf(out))
    assert_close_logits(theirs, logits(dropless))
    assert (theirs - logits(dropping)).abs().max() > 0.1


def test_router_temperature_is_folded_into_the_router_and_noise_and_dropout_are_training_only(tmp_path, capsys):
    ours = trained_like(moe_router_temperature=0.5, moe_router_noise_std=1.0, moe_router_dropout=0.3,
                        ffn_dropout=0.2)
    out, _ = export_model_to_hf(ours, tmp_path / "hf")
    hf = load_hf(out)
    assert_close_logits(logits(hf), logits(ours))  # eval: no noise, no dropout
    # softmax(W x / 0.5) = softmax((2 W) x)
    assert torch.equal(hf.model.layers[0].mlp.gate.weight, ours.layers["0"].ffn.router.weight / 0.5)


def test_from_hf_gives_back_the_same_weights(tmp_path):
    ours = trained_like(tie_embeddings=True, rope_base=5000.0)
    out, _ = export_model_to_hf(ours, tmp_path / "hf")
    variant, config, state = import_model_from_hf(out)
    assert variant == "moe"
    expected = {**tiny_config(tie_embeddings=True, rope_base=5000.0), "norm_eps": 1e-6, "moe_aux_loss_coef": 0.001}
    del expected["moe_min_capacity"]  # the default, 4: with the capacity factor below no slot is ever dropped
    expected["moe_capacity_factor"] = 4.0  # = moe_num_experts: no slot dropped, as transformers computes
    assert {key: config[key] for key in expected} == expected and config["moe_z_loss_coef"] == 0.0
    original = ours.state_dict()
    assert sorted(state) == sorted(original)
    assert all(torch.equal(state[name], original[name]) for name in original)


def test_from_hf_reads_a_qwen3_moe_transformers_made(tmp_path, capsys):
    """A Qwen3-MoE built and saved by transformers (its own init, every weight then moved), through the CLI: the
    component it writes builds our model, which with the written weights gives transformers' logits."""
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    hf = Qwen3MoeForCausalLM(Qwen3MoeConfig(
        vocab_size=64, hidden_size=32, intermediate_size=40, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=1, max_position_embeddings=32, rms_norm_eps=1e-6, rope_theta=10000.0, num_experts=6,
        num_experts_per_tok=3, moe_intermediate_size=8, norm_topk_prob=True, tie_word_embeddings=False))
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for parameter in hf.parameters():  # the router starts at zero: every expert would tie
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    hf.eval().save_pretrained(tmp_path / "hf")

    assert main(["convert", "from-hf", str(tmp_path / "hf"), str(tmp_path / "warm.pt")]) == 0
    printed = capsys.readouterr().out
    # by hand, per block: q and o 32 x 32 each, k and v (one head of 8) 8 x 32 each, norms 2 x 32 + q/k 2 x 8,
    # router 6 x 32, experts 6 x 3 x 8 x 32; then the embedding and the head 64 x 32 each, the final norm 32
    count = 3 * (2 * 32 * 32 + 2 * 8 * 32 + 64 + 16 + 192 + 4608) + 2 * 2048 + 32
    assert f"({count:,} parameters)" in printed and "moe_capacity_factor 6 (= moe_num_experts)" in printed
    model = build(tmp_path / "warm.yaml")["model_raw"]
    model.load_state_dict(torch.load(tmp_path / "warm.pt", weights_only=True))
    assert type(model).__name__ == "QwenModel" and model.config.moe_top_k == 3 and model.config.n_kv_heads == 1
    ids = torch.randint(0, 64, (2, 32), generator=torch.Generator().manual_seed(3))
    assert_close_logits(logits(model.eval(), ids), logits(hf, ids))


REFUSED = {
    "norm_topk_prob": ({"norm_topk_prob": False}, "norm_topk_prob: false"),
    "dense_layers": ({"mlp_only_layers": [1]}, "every block of model/moe is a mixture of experts"),
    "sparse_step": ({"decoder_sparse_step": 2}, "decoder_sparse_step 2"),
    "head_dim": ({"head_dim": 16}, "head_dim 16 x 4 heads != hidden_size 32"),
    "sliding_window": ({"use_sliding_window": True}, "use_sliding_window: true"),
    "attention_bias": ({"attention_bias": True}, "attention_bias: true"),
    "rope_scaling": ({"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}},
                     r"RoPE scaling \(linear\)"),
    "gelu": ({"hidden_act": "gelu"}, "hidden_act 'gelu'"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_qwen3_moe_shapes_model_moe_cannot_hold_are_refused(tmp_path, capsys, case):
    from transformers import Qwen3MoeConfig

    changes, message = REFUSED[case]
    fields = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16,
                  norm_topk_prob=True)
    Qwen3MoeConfig(**{**fields, **changes}).save_pretrained(tmp_path / "hf")  # refused before weights are read
    assert main(["convert", "from-hf", str(tmp_path / "hf"), str(tmp_path / "out.pt")]) == 1
    err = capsys.readouterr().err
    assert "modalities convert: error: this Qwen3-MoE has no model/moe form:" in err
    assert re.search(message, err), err
    assert not (tmp_path / "out.pt").exists()
    with pytest.raises(HFConversionError, match=message):
        import_model_from_hf(tmp_path / "hf")


def _checkpoint_config(tmp_path, state: dict, **model_overrides) -> str:
    """A config whose model/checkpointed loads ``state`` (saved as a .pt) into a tiny model/moe."""
    torch.save(state, tmp_path / "trained.pt")
    fields = "\n".join(f"    {key}: {value}" for key, value in tiny_config(**model_overrides).items())
    (tmp_path / "convert.yaml").write_text(f"""model:
  component_key: model
  variant_key: moe
  config:
{fields}
checkpointed_model:
  component_key: model
  variant_key: checkpointed
  config:
    model: {{instance_key: model, pass_type: BY_REFERENCE}}
    checkpoint_loading: {{component_key: checkpoint_loading, variant_key: torch, config: {{device: cpu}}}}
    checkpoint_path: {tmp_path / "trained.pt"}
""")
    return str(tmp_path / "convert.yaml")


def test_the_cli_exports_a_checkpoint_and_says_what_has_no_counterpart(tmp_path, capsys):
    ours = trained_like(moe_capacity_factor=1.25, moe_router_temperature=2.0)
    config = _checkpoint_config(tmp_path, ours.state_dict(), moe_capacity_factor=1.25, moe_router_temperature=2.0)
    assert main(["convert", "to-hf", config, str(tmp_path / "hf")]) == 0
    printed = capsys.readouterr().out
    assert "wrote a transformers qwen3_moe model to" in printed and str(tmp_path / "trained.pt") in printed
    for note in ("capacity: transformers' Qwen3-MoE sends every token to its top-k experts",
                 "router noise (moe_router_noise_std) and router and expert dropout",
                 "moe_z_loss_coef has no counterpart", "moe_router_temperature 2.0: transformers has none"):
        assert note in printed
    # the export keeps every slot: it is our model with a capacity that drops none, router temperature and all
    dropless = build_moe_model(**tiny_config(moe_router_temperature=2.0)).eval()
    dropless.load_state_dict(ours.state_dict())
    assert_close_logits(logits(load_hf(tmp_path / "hf")), logits(dropless))


def test_a_checkpoint_that_does_not_fit_the_config_is_refused(tmp_path, capsys):
    config = _checkpoint_config(tmp_path, trained_like().state_dict(), moe_num_experts=8)
    assert main(["convert", "to-hf", config, str(tmp_path / "hf")]) == 1
    err = capsys.readouterr().err
    assert "the checkpoint does not fit the model/moe config" in err and "layers.0.ffn.experts.w1" in err
    assert not (tmp_path / "hf").exists()
