"""model/gpt2: causality, attention variants (manual/pytorch_flash, GQA, RoPE), SwiGLU, config validation,
weight decay groups, and that a tiny model can learn."""

from __future__ import annotations

import re

import pytest
import torch
from pydantic import ValidationError

from modalities.models.gpt2.config import GPT2LLMConfig
from modalities.models.gpt2.model import (
    CausalSelfAttention,
    GPT2Block,
    RotaryTransform,
    SwiGLU,
    swiglu_hidden_dim,
)
from tests.models.helpers import build_gpt2, gpt2_config_dict, norm_block, rope_overrides

VARIANTS = {
    "absolute_gelu": {},
    "rope_gqa_swiglu": {
        **rope_overrides(),
        "n_head_kv": 2,
        "activation_type": "swiglu",
        "enforce_swiglu_hidden_dim_multiple_of": 16,
    },
    "nope_rms_untied": {
        "poe_type": "NOPE",
        "use_weight_tying": False,
        "bias": False,
        "attention_norm_config": norm_block(32, "rms_norm"),
        "ffn_norm_config": norm_block(32, "pytorch_rms_norm"),
    },
}


def tokens(batch: int = 2, length: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 64, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("implementation", ["manual", "pytorch_flash"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_changing_token_t_changes_no_logits_before_t(variant, implementation):
    model = build_gpt2(**VARIANTS[variant], attention_implementation=implementation).eval()
    ids = tokens()
    changed = ids.clone()
    t = 9
    changed[:, t] = (changed[:, t] + 1) % 64
    with torch.no_grad():
        before, after = model({"input_ids": ids})["logits"], model({"input_ids": changed})["logits"]
    torch.testing.assert_close(before[:, :t], after[:, :t], atol=0, rtol=0)
    assert not torch.allclose(before[:, t:], after[:, t:])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_pytorch_flash_and_manual_attention_agree(variant):
    manual = build_gpt2(**VARIANTS[variant], attention_implementation="manual").eval()
    fused = build_gpt2(**VARIANTS[variant], attention_implementation="pytorch_flash").eval()
    fused.load_state_dict(manual.state_dict())
    ids = tokens()
    with torch.no_grad():
        torch.testing.assert_close(
            fused({"input_ids": ids})["logits"], manual({"input_ids": ids})["logits"], atol=1e-5, rtol=1e-5
        )


def attention(n_head_q: int, n_head_kv: int, implementation: str = "manual", n_embd: int = 32) -> CausalSelfAttention:
    config = GPT2LLMConfig(
        **gpt2_config_dict(n_embd=n_embd, n_head_q=n_head_q, n_head_kv=n_head_kv, attention_implementation=implementation)
    )
    return CausalSelfAttention(config).eval()


def test_multi_head_attention_matches_torch_multihead_attention():
    torch.manual_seed(0)
    ours = attention(4, 4)
    reference = torch.nn.MultiheadAttention(32, 4, batch_first=True).eval()
    with torch.no_grad():
        reference.in_proj_weight.copy_(torch.cat([ours.q_attn.weight, ours.k_attn.weight, ours.v_attn.weight]))
        reference.in_proj_bias.copy_(torch.cat([ours.q_attn.bias, ours.k_attn.bias, ours.v_attn.bias]))
        reference.out_proj.weight.copy_(ours.c_proj.weight)
        reference.out_proj.bias.copy_(ours.c_proj.bias)
        x = torch.randn(2, 10, 32)
        future = torch.ones(10, 10, dtype=torch.bool).triu(1)
        expected, _ = reference(x, x, x, attn_mask=future, need_weights=False)
        torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("implementation", ["manual", "pytorch_flash"])
def test_grouped_query_attention_equals_mha_with_each_kv_head_shared_by_its_group(implementation):
    torch.manual_seed(0)
    gqa, mha = attention(4, 2, implementation), attention(4, 4, implementation)
    head_dim = 8
    assert gqa.k_attn.weight.shape == (2 * head_dim, 32) and gqa.v_attn.weight.shape == (2 * head_dim, 32)
    assert gqa.q_attn.weight.shape == (32, 32)

    def repeat_heads(weight: torch.Tensor) -> torch.Tensor:  # kv head j serves query heads 2j and 2j+1
        return (
            weight.view(2, head_dim, *weight.shape[1:])
            .repeat_interleave(2, dim=0)
            .reshape(4 * head_dim, *weight.shape[1:])
        )

    with torch.no_grad():
        for name in ("q_attn", "c_proj"):
            getattr(mha, name).load_state_dict(getattr(gqa, name).state_dict())
        for name in ("k_attn", "v_attn"):
            getattr(mha, name).weight.copy_(repeat_heads(getattr(gqa, name).weight))
            getattr(mha, name).bias.copy_(repeat_heads(getattr(gqa, name).bias))
        x = torch.randn(2, 12, 32)
        torch.testing.assert_close(gqa(x), mha(x), atol=1e-5, rtol=1e-5)


def test_rope_scores_depend_only_on_the_relative_offset():
    torch.manual_seed(0)
    T, head_dim = 12, 16
    rope = RotaryTransform(n_embd=64, n_head=4, base_freq=10000)
    q = torch.randn(head_dim).expand(1, 1, T, head_dim)  # the same query and key at every position
    k = torch.randn(head_dim).expand(1, 1, T, head_dim)
    rotated_q, rotated_k, _ = rope(q, k, k)
    scores = (rotated_q @ rotated_k.transpose(-2, -1))[0, 0]
    for offset in range(-3, 4):
        diagonal = torch.diagonal(scores, offset=offset)
        torch.testing.assert_close(diagonal, diagonal[0].expand_as(diagonal), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(torch.diagonal(scores, 0)[0], torch.diagonal(scores, 2)[0])
    torch.testing.assert_close(rotated_q.norm(dim=-1), q.norm(dim=-1))  # a rotation keeps lengths
    torch.testing.assert_close(rotated_q[..., 0, :], q[..., 0, :])  # position 0 is not rotated


@pytest.mark.parametrize(
    "ffn_hidden, multiple, expected", [(128, 256, 256), (3072, 256, 2048), (1000, 64, 704), (96, 1, 64)]
)
def test_swiglu_hidden_dim_is_two_thirds_rounded_up(ffn_hidden, multiple, expected):
    assert swiglu_hidden_dim(ffn_hidden, multiple) == expected


def test_swiglu_shapes_and_formula():
    torch.manual_seed(0)
    mlp = SwiGLU(n_embd=32, ffn_hidden=128, bias=False, multiple_of=16)
    assert mlp.W.weight.shape == mlp.V.weight.shape == (96, 32) and mlp.W_2.weight.shape == (32, 96)
    x = torch.randn(2, 5, 32)
    expected = (torch.nn.functional.silu(x @ mlp.W.weight.T) * (x @ mlp.V.weight.T)) @ mlp.W_2.weight.T
    torch.testing.assert_close(mlp(x), expected)
    block = build_gpt2(activation_type="swiglu", enforce_swiglu_hidden_dim_multiple_of=16).transformer.h["0"]
    assert isinstance(block.mlp, SwiGLU) and block.mlp.W.out_features == 96


@pytest.mark.parametrize("variant", ["absolute_gelu", "rope_gqa_swiglu"])
def test_tiny_model_overfits_one_batch(variant):
    model = build_gpt2(**VARIANTS[variant])
    ids = tokens(batch=4, length=16, seed=3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(50):
        logits = model({"input_ids": ids[:, :-1]})["logits"]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 64), ids[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0], losses[::10]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_parameter_is_in_exactly_one_weight_decay_group(variant):
    model = build_gpt2(**VARIANTS[variant])
    for name, _ in model.named_parameters():
        groups = [g for g, regexes in model.weight_decay_groups.items() if any(re.search(r, name) for r in regexes)]
        assert len(groups) == 1, (name, groups)
    names = dict(model.named_parameters())
    grouped = {g: [n for n in names if any(re.search(r, n) for r in rs)] for g, rs in model.weight_decay_groups.items()}
    assert "transformer.wte.weight" in grouped["embedding"]
    assert "transformer.h.0.attention_norm.weight" in grouped["layernorm"]
    assert "transformer.h.1.attn.q_attn.weight" in grouped["linear"]


def test_blocks_are_a_module_dict_of_the_listed_block_class_keyed_by_layer_index():
    # A ModuleDict keyed "0", "1", ... as in the reference: a pipeline stage can delete layers and keep names.
    model = build_gpt2(n_layer=3)
    assert model.block_classes() == (GPT2Block,)
    assert isinstance(model.transformer.h, torch.nn.ModuleDict) and list(model.transformer.h) == ["0", "1", "2"]
    assert all(type(block) is GPT2Block for block in model.transformer.h.values())


def test_meta_device_build_allocates_nothing():
    model = build_gpt2(use_meta_device=True)
    assert all(p.is_meta for p in model.parameters()) and not list(model.buffers())


def test_dao_flash_without_flash_attn_says_what_to_do():
    try:
        import flash_attn  # noqa: F401

        pytest.skip("flash-attn is installed")
    except ImportError:
        pass
    with pytest.raises(ImportError, match="flash-attn.*pytorch_flash"):
        build_gpt2(attention_implementation="dao_flash")


def test_absolute_positions_refuse_sequences_longer_than_the_table():
    with pytest.raises(ValueError, match="17 tokens but the model.s sequence_length is 16"):
        build_gpt2()({"input_ids": tokens(length=17)})


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"n_embd": 30, "n_head_q": 4, "n_head_kv": 4}, r"n_embd \(30\) must be divisible by n_head_q \(4\)"),
        ({"n_head_q": 4, "n_head_kv": 3}, r"n_head_q \(4\) must be divisible by n_head_kv \(3\)"),
        ({**rope_overrides(), "poe_type": "ABSOLUTE"}, "set poe_type: NOPE"),
        ({**rope_overrides(n_head_q=2)}, r"must equal the model's n_embd/n_head_q \(32/4\)"),
        ({"ffn_norm_config": norm_block(16)}, "ffn_norm_config.config normalizes 16 features but n_embd is 32"),
        ({"attention_implementation": "xformers"}, "manual"),
        ({"n_head_kv": 0}, "greater than 0"),
    ],
)
def test_invalid_configs_are_explained(overrides, message):
    with pytest.raises(ValidationError, match=message):
        GPT2LLMConfig(**gpt2_config_dict(**overrides))


def test_rotary_config_must_match_its_type_hint():
    config = gpt2_config_dict(**rope_overrides())
    config["attention_config"]["qkv_transforms"][0]["type_hint"] = "IdentityTransform"
    with pytest.raises(ValidationError, match="IdentityTransform"):
        GPT2LLMConfig(**config)


def test_norm_config_is_checked_against_its_norm_type():
    with pytest.raises(ValidationError, match="ndim"):
        GPT2LLMConfig(**gpt2_config_dict(ffn_norm_config={"norm_type": "rms_norm", "config": {"normalized_shape": 32}}))


def test_adamw_excludes_embedding_and_norm_groups_by_name():
    from modalities.optim.optimizers import assign_weight_decay_groups

    model = build_gpt2(**VARIANTS["rope_gqa_swiglu"])
    members = assign_weight_decay_groups(dict(model.named_parameters()), model.weight_decay_groups)
    assert members["embedding"] == ["transformer.wte.weight"]
    assert len(members["layernorm"]) == 2 * 2 * 2 + 2  # two norms per block (weight, bias) + the final norm
