"""Weights between the LayerNorm + RoPE + SwiGLU shape of ``model/gpt2`` and transformers' ``StableLmForCausalLM``.

That shape (the reference's conversion test config and its lorem-ipsum and getting-started configs) is StableLM's
architecture with ``partial_rotary_factor: 1.0``, sequential residuals and no q/k LayerNorm:

    transformer.wte                      model.embed_tokens
    h.<i>.attention_norm / ffn_norm      model.layers.<i>.input_layernorm / post_attention_layernorm (LayerNorm)
    h.<i>.attn.q_attn/k_attn/v_attn      self_attn.q_proj/k_proj/v_proj      c_proj: self_attn.o_proj
    h.<i>.mlp.W / V / W_2                mlp.gate_proj / up_proj / down_proj
    transformer.lm_head_norm / lm_head   model.norm / lm_head

StableLM rotates feature i with feature i + head_dim/2 at angle t * theta^(-2i/head_dim), as we do, and lets
query head h read key/value head h // (heads / kv heads), as we do, so no weight is permuted. Its LayerNorms
always have a scale and a shift: a LayerNorm of ours without them is written as scale 1, shift 0 (exactly the
same function). It has biases on q/k/v only, none on o_proj or the MLP: our ``bias: true`` (biases on every
linear) has no StableLM form; read back, a StableLM with q/k/v biases is our ``bias: true`` with zero o_proj and
MLP biases. Its per-head q/k LayerNorm runs before RoPE, ours after; a LayerNorm subtracts the mean, which a
rotation does not keep, so a model with qk-norm has no StableLM form.
"""

from __future__ import annotations

from typing import Any

import torch

from modalities.interop.hf_gpt2 import layer_norm_problems
from modalities.interop.hf_llama import (
    decoder_fields,
    full_float,
    rope_swiglu_gpt2_config,
    rope_swiglu_problems,
)
from modalities.models.gpt2.model import GPT2LLM


class HFStableLmConversionError(ValueError):
    pass


def stablelm_problems(model: GPT2LLM) -> list[str]:
    """Why this model has no exact StableLM form (empty if it has one)."""
    problems = rope_swiglu_problems(model, "StableLM") + layer_norm_problems(model, "StableLM", "layer_norm_eps")
    if model.config.bias:
        problems.append("bias: true (biases on every linear); StableLM has biases on q/k/v only")
    if model.blocks[0].attn.q_norm is not None:
        problems.append(
            "qk_norm_config: StableLM's q/k LayerNorm runs before RoPE, ours after, and a LayerNorm's centring does "
            "not commute with the rotation"
        )
    return problems


def hf_stablelm_config(model: GPT2LLM, token_ids: dict[str, int | None] | None = None):
    """The transformers StableLmConfig of this model; HFStableLmConversionError if it has none."""
    from transformers import StableLmConfig

    problems = stablelm_problems(model)
    if problems:
        raise HFStableLmConversionError(
            "this model/gpt2 configuration has no StableLM form:\n  - " + "\n  - ".join(problems)
        )
    return StableLmConfig(
        **decoder_fields(model, token_ids),
        layer_norm_eps=model.transformer.lm_head_norm.eps,
        partial_rotary_factor=1.0,  # StableLM's default rotates a quarter of each head; we rotate all of it
        use_qkv_bias=False,
        qk_layernorm=False,
        use_parallel_residual=False,
    )


def weight_map(n_layer: int, qkv_bias: bool) -> list[tuple[str, str]]:
    """(our parameter name, StableLM parameter name); the norms' shifts and q/k/v biases included."""
    pairs = [("transformer.wte.weight", "model.embed_tokens.weight")]
    for i in range(n_layer):
        ours, theirs = f"transformer.h.{i}.", f"model.layers.{i}."
        for our_norm, hf_norm in (("attention_norm", "input_layernorm"), ("ffn_norm", "post_attention_layernorm")):
            pairs += [(f"{ours}{our_norm}.{p}", f"{theirs}{hf_norm}.{p}") for p in ("weight", "bias")]
        for our_name, hf_name in (("q_attn", "q_proj"), ("k_attn", "k_proj"), ("v_attn", "v_proj"), ("c_proj", "o_proj")):
            pairs.append((f"{ours}attn.{our_name}.weight", f"{theirs}self_attn.{hf_name}.weight"))
            if qkv_bias and our_name != "c_proj":
                pairs.append((f"{ours}attn.{our_name}.bias", f"{theirs}self_attn.{hf_name}.bias"))
        for our_name, hf_name in (("W", "gate_proj"), ("V", "up_proj"), ("W_2", "down_proj")):
            pairs.append((f"{ours}mlp.{our_name}.weight", f"{theirs}mlp.{hf_name}.weight"))
    pairs += [("transformer.lm_head_norm.weight", "model.norm.weight"), ("transformer.lm_head_norm.bias", "model.norm.bias"),
              ("transformer.lm_head.weight", "lm_head.weight")]
    return pairs


@torch.no_grad()
def to_hf_stablelm(model: GPT2LLM, token_ids: dict[str, int | None] | None = None):
    """A transformers StableLmForCausalLM (float32, CPU) holding our model's weights."""
    from transformers import StableLmForCausalLM

    hf_model = StableLmForCausalLM(hf_stablelm_config(model, token_ids)).float().eval()
    ours = dict(model.named_parameters(remove_duplicate=False))
    theirs = dict(hf_model.named_parameters(remove_duplicate=False))
    for our_name, hf_name in weight_map(model.n_layer, qkv_bias=False):
        if hf_name not in theirs:  # a tied lm_head is the embedding in HF's parameters
            continue
        if our_name in ours:
            theirs[hf_name].copy_(full_float(ours[our_name]))
        else:  # a LayerNorm of ours without scale or shift: StableLM's identity values
            theirs[hf_name].fill_(1.0 if hf_name.endswith("weight") else 0.0)
    if model.use_weight_tying:
        hf_model.tie_weights()
    return hf_model


# ---- import: a transformers StableLM -> our model/gpt2 -----------------------------------------------------


def gpt2_config_from_hf_stablelm(hf_config) -> dict[str, Any]:
    """The model/gpt2 config (plain values) of a transformers StableLM config."""
    rope = getattr(hf_config, "rope_parameters", None) or {}
    theta = rope.get("rope_theta", getattr(hf_config, "rope_theta", 10000.0))
    partial = rope.get("partial_rotary_factor", getattr(hf_config, "partial_rotary_factor", 0.25))
    rope_type = rope.get("rope_type", "default")
    refusals = {
        f"partial_rotary_factor {partial}: model/gpt2 rotates the whole head (1.0)": partial != 1.0,
        f"RoPE scaling ({rope_type}) has no model/gpt2 form; only plain RoPE": rope_type != "default",
        f"rope_theta {theta} is not a whole number; model/gpt2's base_freq is an int": not float(theta).is_integer(),
        "use_parallel_residual: model/gpt2's blocks add attention, then the MLP": hf_config.use_parallel_residual,
        "qk_layernorm: StableLM normalizes q/k before RoPE, model/gpt2 after it": hf_config.qk_layernorm,
        f"hidden_act {hf_config.hidden_act!r}: model/gpt2's SwiGLU uses silu": hf_config.hidden_act != "silu",
    }
    refused = [reason for reason, applies in refusals.items() if applies]
    if refused:
        raise HFStableLmConversionError("this StableLM has no model/gpt2 form: " + "; ".join(refused))
    norm = {"norm_type": "layer_norm",
            "config": {"normalized_shape": hf_config.hidden_size, "eps": hf_config.layer_norm_eps, "bias": True}}
    # q/k/v biases need our bias: true, which also gives o_proj and the MLP biases; those stay zero.
    return rope_swiglu_gpt2_config(hf_config, norm, bool(hf_config.use_qkv_bias), int(theta))


def state_dict_from_hf_stablelm(hf_model, our_model: GPT2LLM) -> dict[str, torch.Tensor]:
    """Our state dict (names of ``our_model``) with the StableLM's weights; biases StableLM lacks are zero."""
    theirs = {name: p.detach().cpu().float() for name, p in hf_model.named_parameters(remove_duplicate=False)}
    if getattr(hf_model.config, "tie_word_embeddings", False) and "lm_head.weight" not in theirs:
        theirs["lm_head.weight"] = theirs["model.embed_tokens.weight"]
    state = {name: torch.zeros_like(t.detach()) for name, t in our_model.state_dict().items()}
    for our_name, hf_name in weight_map(our_model.n_layer, qkv_bias=bool(hf_model.config.use_qkv_bias)):
        if hf_name not in theirs:
            raise HFStableLmConversionError(f"the transformers model has no {hf_name}")
        state[our_name] = theirs[hf_name].clone()
    if our_model.use_weight_tying:
        state["transformer.wte.weight"] = state["transformer.lm_head.weight"]
    return state
