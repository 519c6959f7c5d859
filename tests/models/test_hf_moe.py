"""model/moe to transformers' Qwen3-MoE and back. The export loads with AutoModelForCausalLM and gives our logits
(fp32, relative 1e-5 of their scale) wherever our model drops no slot; a model whose capacity drops slots even under
balanced routing is refused unless the dropless model is asked for; what else has no counterpart (router
temperature, noise, dropout, z-loss) does what interop/hf_qwen3_moe.py says and is named by the export; from-hf
reads a folder back to the same weights and logits, and a Qwen3-MoE transformers made itself to its logits;
folders model/moe cannot hold are refused with the field."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from safetensors import safe_open

from modalities.cli.main import main
from modalities.interop.hf_export import export_model_to_hf, import_model_from_hf, load_tokenizer
from modalities.interop.hf_gpt2 import HFConversionError
from modalities.interop.hf_qwen3_moe import export_notes, tokens_never_over_capacity
from modalities.models.moe.config import MoEModelConfig
from modalities.models.moe.model import QwenModel, build_moe_model
from tests.compat.helpers import build, checkpointed_model_yaml
from tests.data.conftest import SAMPLE_TOKENIZER
from tests.models.test_moe import tiny_config
from tests.tolerances import assert_close_float32

VOCAB = 128
IDS = torch.tensor([[1, 7, 30, 63, 5, 0, 9, 15, 2, 44, 44, 44, 8, 9, 127, 100],
                    [3, 3, 3, 62, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 90]])


def config_of(**overrides) -> dict:
    """tiny_config (d_model 32, 4 heads of 8, 2 kv heads, 2 layers, 4 experts of 16, top 2, capacity factor 4 =
    experts: no slot ever dropped) with a vocabulary of 128."""
    return tiny_config(**{"vocab_size": VOCAB, **overrides})


def trained_like(**overrides) -> QwenModel:
    """A tiny model/moe with every weight moved off its init (norm scales included), in eval mode."""
    model = build_moe_model(**config_of(seed=0, **overrides))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


def logits(model, ids=IDS) -> torch.Tensor:
    with torch.no_grad():
        return model({"input_ids": ids})["logits"] if isinstance(model, QwenModel) else model(input_ids=ids).logits


def load_hf(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()


def most_slots_on_one_expert(model: QwenModel, ids=IDS) -> int:
    """The largest number of tokens any block routes to one expert on ``ids``: top-k of the router's softmax,
    counted here from each block's input (a forward hook), not by the model's routing code."""
    inputs = []
    hooks = [block.ffn.register_forward_hook(lambda module, args, out: inputs.append((module, args[0])))
             for block in model.layers.values()]
    logits(model, ids)
    for hook in hooks:
        hook.remove()
    most = 0
    for module, x in inputs:
        router_logits = x.reshape(-1, x.shape[-1]) @ module.router.weight.T / module.router_temperature
        chosen = torch.topk(torch.softmax(router_logits, dim=-1), module.top_k, dim=-1).indices
        most = max(most, int(torch.bincount(chosen.reshape(-1), minlength=module.num_experts).max()))
    return most


@pytest.mark.parametrize("tie", [False, True])
def test_export_loads_in_transformers_with_our_logits(tmp_path, tie):
    ours = trained_like(tie_embeddings=tie, rope_base=5000.0, norm_eps=1e-5, moe_aux_loss_coef=0.02)
    out, architecture = export_model_to_hf(ours, tmp_path / "hf")
    hf = load_hf(out)
    assert architecture == "qwen3_moe" and type(hf).__name__ == "Qwen3MoeForCausalLM"
    assert_close_float32(logits(hf), logits(ours))
    saved = json.loads((out / "config.json").read_text())
    # vocab 128, 16 positions, d_model 32, 4 heads of 8, 2 kv heads, 2 layers, d_ff 48, 4 experts of 16
    expected = {
        "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "vocab_size": 128,
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
        assert "model.layers.1.mlp.experts.gate_up_proj" not in f.keys()  # noqa: SIM118 (safe_open is no dict)
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
    assert_close_float32(logits(load_hf(out), ids), logits(ours, ids))


# -- capacity: what transformers (no capacity) can and cannot compute --------------------------------------------


@pytest.mark.parametrize(("factor", "experts", "min_capacity", "expected"), [
    (4.0, 4, 1, None),  # factor = experts: ceil(N) >= N for every N
    (9.0, 4, 1, None),
    (2.0, 4, 1, 1),  # ceil(N / 2) >= N only for N = 1
    (3.0, 4, 1, 3),  # ceil(3N / 4) >= N for N <= 3 (ceil(9/4) = 3), not 4 (3 < 4)
    (3.0, 4, 5, 5),  # min_capacity 5 covers up to 5 tokens, ceil(18/4) = 5 < 6
    (1.25, 8, 4, 4),  # the reference's configs: only the minimum capacity is sure
    (7.5, 8, 1, 15),  # ceil(7.5 x 15 / 8) = 15, ceil(7.5 x 16 / 8) = 15 < 16
])
def test_tokens_never_over_capacity_by_hand(factor, experts, min_capacity, expected):
    config = MoEModelConfig.model_validate(config_of(moe_num_experts=experts, moe_top_k=1,
                                                     moe_capacity_factor=factor, moe_min_capacity=min_capacity))
    assert tokens_never_over_capacity(config) == expected
    # and by brute force: an expert takes at most one slot of each of N tokens, so all fit iff capacity >= N
    fits = [max(math.ceil(factor * n / experts), min_capacity) >= n for n in range(1, 200)]
    assert fits == [expected is None or n <= expected for n in range(1, 200)]


def test_a_capacity_of_top_k_slots_per_token_or_more_exports_and_equals_ours_where_nothing_is_over_it(tmp_path):
    """factor 3 >= top_k 2: a balanced router keeps every slot, so the export is exact where no expert is chosen by
    more than capacity max(ceil(3 x 32 / 4), 1) = 24 of IDS's 32 tokens (checked), whatever the overflow policy."""
    for policy in ("drop", "residual"):
        ours = trained_like(moe_capacity_factor=3.0, moe_overflow_policy=policy)
        assert most_slots_on_one_expert(ours) <= 24
        out, _ = export_model_to_hf(ours, tmp_path / policy)
        assert_close_float32(logits(load_hf(out)), logits(ours))


@pytest.mark.parametrize("policy", ["drop", "residual"])
def test_a_capacity_that_drops_under_balanced_routing_is_refused_unless_dropless(tmp_path, policy):
    """factor 0.5 < top_k 2: capacity max(ceil(0.5 x 32 / 4), 1) = 4 slots per expert, 16 of 64 slots of IDS
    kept. Refused, naming the field; with dropless, the export equals our model with the same weights and a
    capacity that keeps every slot (factor = experts), and differs from the dropping one."""
    dropping = trained_like(moe_capacity_factor=0.5, moe_overflow_policy=policy)
    with pytest.raises(HFConversionError, match=r"moe_capacity_factor 0\.5 is below moe_top_k 2.*--dropless"):
        export_model_to_hf(dropping, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    out, _ = export_model_to_hf(dropping, tmp_path / "hf", dropless=True)
    dropless = build_moe_model(**config_of(moe_capacity_factor=4.0)).eval()
    dropless.load_state_dict(dropping.state_dict())
    theirs = logits(load_hf(out))
    assert_close_float32(theirs, logits(dropless))
    assert (theirs - logits(dropping)).abs().max() > 0.1


def test_router_temperature_is_folded_into_the_router_and_noise_and_dropout_are_training_only(tmp_path):
    ours = trained_like(moe_router_temperature=0.5, moe_router_noise_std=1.0, moe_router_dropout=0.3,
                        ffn_dropout=0.2)
    out, _ = export_model_to_hf(ours, tmp_path / "hf")
    hf = load_hf(out)
    assert_close_float32(logits(hf), logits(ours))  # eval: no noise, no dropout
    # softmax(W x / 0.5) = softmax((2 W) x)
    assert torch.equal(hf.model.layers[0].mlp.gate.weight, ours.layers["0"].ffn.router.weight / 0.5)


@pytest.mark.parametrize(("overrides", "notes"), [
    ({}, [("moe_aux_loss_coef 0.001 is written as router_aux_loss_coef",)]),  # factor 4 = experts: no capacity note
    ({"moe_aux_loss_coef": 0.0}, []),
    ({"moe_capacity_factor": 2.0, "moe_min_capacity": 3, "moe_aux_loss_coef": 0.0},
     [("moe_capacity_factor 2, moe_min_capacity 3:", "every input of at most 3 tokens",
       "max(ceil(2 x tokens / 4), 3)", "moe_overflow_policy residual")]),
    ({"moe_capacity_factor": 1.25, "moe_aux_loss_coef": 0.0}, [("every input of at most 1 token (",)]),
    ({"moe_router_noise_std": 0.5, "ffn_dropout": 0.1, "moe_aux_loss_coef": 0.0},
     [("moe_router_noise_std 0.5, ffn_dropout 0.1: act in training only",)]),
    ({"moe_router_temperature": 2.0, "moe_z_loss_coef": 0.01, "moe_aux_loss_coef": 0.0},
     [("moe_router_temperature 2: Qwen3-MoE has none",), ("moe_z_loss_coef 0.01: Qwen3-MoE has no router z-loss",)]),
])
def test_the_export_names_each_field_it_leaves_out_and_only_those(overrides, notes):
    written = export_notes(MoEModelConfig.model_validate(config_of(**overrides)))
    assert len(written) == len(notes), written
    for fragments in notes:
        assert sum(all(fragment in note for fragment in fragments) for note in written) == 1, (fragments, written)


# -- from Hugging Face ---------------------------------------------------------------------------------------------


def test_from_hf_gives_back_the_same_weights_and_logits(tmp_path):
    ours = trained_like(tie_embeddings=True, rope_base=5000.0, norm_eps=1e-5, moe_top_k=3, moe_aux_loss_coef=0.02)
    out, _ = export_model_to_hf(ours, tmp_path / "hf")
    variant, config, state = import_model_from_hf(out)
    assert variant == "moe"
    expected = {**config_of(tie_embeddings=True, rope_base=5000.0, norm_eps=1e-5, moe_top_k=3),
                "moe_aux_loss_coef": 0.02, "moe_z_loss_coef": 0.0}
    del expected["moe_min_capacity"]  # the default, 4: with the capacity factor below no slot is ever dropped
    expected["moe_capacity_factor"] = 4.0  # = moe_num_experts: no slot dropped, as transformers computes
    assert {key: config[key] for key in expected} == expected
    original = ours.state_dict()
    assert sorted(state) == sorted(original)
    assert all(torch.equal(state[name], original[name]) for name in original)
    imported = build_moe_model(**config).eval()
    imported.load_state_dict(state)
    assert imported.lm_head.weight is imported.token_emb.weight
    assert torch.equal(logits(imported), logits(ours))  # the same weights under the imported config: bit for bit


def test_from_hf_reads_a_qwen3_moe_transformers_made(tmp_path, capsys):
    """A Qwen3-MoE built and saved by transformers (its own init, every weight then moved), through the CLI: the
    component it writes builds our model, which with the written weights gives transformers' logits."""
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    hf = Qwen3MoeForCausalLM(Qwen3MoeConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=40, num_hidden_layers=3, num_attention_heads=4,
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
    # router 6 x 32, experts 6 x 3 x 8 x 32; then the embedding and the head 128 x 32 each, the final norm 32
    count = 3 * (2 * 32 * 32 + 2 * 8 * 32 + 64 + 16 + 192 + 4608) + 2 * 4096 + 32
    assert f"({count:,} parameters)" in printed and "moe_capacity_factor 6 (= moe_num_experts)" in printed
    model = build(tmp_path / "warm.yaml")["model_raw"]
    model.load_state_dict(torch.load(tmp_path / "warm.pt", weights_only=True))
    assert type(model).__name__ == "QwenModel" and model.config.moe_top_k == 3 and model.config.n_kv_heads == 1
    ids = torch.randint(0, VOCAB, (2, 32), generator=torch.Generator().manual_seed(3))
    assert_close_float32(logits(model.eval(), ids), logits(hf, ids))


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
    fields = {"vocab_size": VOCAB, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "num_experts": 4, "num_experts_per_tok": 2,
              "moe_intermediate_size": 16, "norm_topk_prob": True}
    Qwen3MoeConfig(**{**fields, **changes}).save_pretrained(tmp_path / "hf")  # refused before weights are read
    assert main(["convert", "from-hf", str(tmp_path / "hf"), str(tmp_path / "out.pt")]) == 1
    err = capsys.readouterr().err
    assert "modalities convert: error: this Qwen3-MoE has no model/moe form:" in err
    assert re.search(message, err), err
    assert not (tmp_path / "out.pt").exists()
    with pytest.raises(HFConversionError, match=message):
        import_model_from_hf(tmp_path / "hf")


# -- the command line ----------------------------------------------------------------------------------------------


def _checkpoint_config(tmp_path, state: dict, **model_overrides) -> str:
    """A config whose model/checkpointed loads ``state`` (saved as a .pt) into a tiny model/moe."""
    torch.save(state, tmp_path / "trained.pt")
    fields = "\n".join(f"    {key}: {value}" for key, value in config_of(**model_overrides).items())
    model = f"model:\n  component_key: model\n  variant_key: moe\n  config:\n{fields}\n"
    (tmp_path / "convert.yaml").write_text(model + checkpointed_model_yaml(tmp_path / "trained.pt"))
    return str(tmp_path / "convert.yaml")


def test_the_cli_exports_a_checkpoint_with_its_tokenizer_and_names_what_has_no_counterpart(tmp_path, capsys):
    fields = {"vocab_size": 2048, "moe_capacity_factor": 3.0, "moe_router_temperature": 2.0}  # the tokenizer's ids
    ours = trained_like(**fields)
    config = _checkpoint_config(tmp_path, ours.state_dict(), **fields)
    assert main(["convert", "to-hf", config, str(tmp_path / "hf"), "--tokenizer", str(SAMPLE_TOKENIZER)]) == 0
    printed = capsys.readouterr().out
    assert "wrote a transformers qwen3_moe model to" in printed and str(tmp_path / "trained.pt") in printed
    assert f"and the tokenizer of {SAMPLE_TOKENIZER}" in printed
    for note in ("moe_capacity_factor 3, moe_min_capacity 1: transformers' Qwen3-MoE has no capacity",
                 "moe_router_temperature 2: Qwen3-MoE has none", "moe_aux_loss_coef 0.001 is written as"):
        assert note in printed
    assert (tmp_path / "hf" / "tokenizer.json").is_file()
    assert most_slots_on_one_expert(ours) <= 24  # capacity max(ceil(3 x 32 / 4), 1): nothing over it
    assert_close_float32(logits(load_hf(tmp_path / "hf")), logits(ours))


def test_the_cli_refuses_a_capacity_that_drops_before_reading_weights_unless_dropless(tmp_path, capsys):
    ours = trained_like(moe_capacity_factor=1.25)  # the reference's configs: 1.25 < top_k 2
    config = _checkpoint_config(tmp_path, ours.state_dict(), moe_capacity_factor=1.25)
    (tmp_path / "trained.pt").write_bytes(b"not read")  # refused before the weights are read
    assert main(["convert", "to-hf", config, str(tmp_path / "hf")]) == 1
    err = capsys.readouterr().err
    assert "modalities convert: error: 'model' (model/moe): moe_capacity_factor 1.25 is below moe_top_k 2" in err
    assert "Pass --dropless" in err and not (tmp_path / "hf").exists()

    config = _checkpoint_config(tmp_path, ours.state_dict(), moe_capacity_factor=1.25)
    assert main(["convert", "to-hf", config, str(tmp_path / "hf"), "--dropless"]) == 0
    assert "every input of at most 1 token (" in capsys.readouterr().out  # min_capacity 1; ceil(1.25 x 2 / 4) = 1
    dropless = build_moe_model(**config_of()).eval()  # factor 4 = experts
    dropless.load_state_dict(ours.state_dict())
    assert_close_float32(logits(load_hf(tmp_path / "hf")), logits(dropless))


def test_a_checkpoint_that_does_not_fit_the_config_is_refused(tmp_path, capsys):
    config = _checkpoint_config(tmp_path, trained_like().state_dict(), moe_num_experts=8)
    assert main(["convert", "to-hf", config, str(tmp_path / "hf")]) == 1
    err = capsys.readouterr().err
    assert "the checkpoint does not fit the model/moe config" in err and "layers.0.ffn.experts.w1" in err
    assert not (tmp_path / "hf").exists()
