"""Weights between the modern shapes of ``model/gpt2`` and transformers' ``LlamaForCausalLM`` / ``Qwen3ForCausalLM``.

RoPE + SwiGLU + RMSNorm (with or without grouped-query attention, biases, weight tying) is Llama's architecture;
with a per-head q/k RMS norm it is Qwen3's. The correspondence is exact:

    transformer.wte                      model.embed_tokens
    h.<i>.attention_norm / ffn_norm      model.layers.<i>.input_layernorm / post_attention_layernorm
    h.<i>.attn.q_attn/k_attn/v_attn      self_attn.q_proj/k_proj/v_proj      c_proj: self_attn.o_proj
    h.<i>.attn.q_norm/k_norm             self_attn.q_norm/k_norm (Qwen3)
    h.<i>.mlp.W / V / W_2                mlp.gate_proj / up_proj / down_proj
    transformer.lm_head_norm / lm_head   model.norm / lm_head

Both rotate feature i with feature i + head_dim/2 (``rotate_half``) at angle t * theta^(-2i/head_dim), and let
query head h read key/value head h // (heads / kv heads), so no weight is permuted. One difference: we apply the
q/k norm after RoPE, Qwen3 before it. A rotation keeps a vector's RMS, so the two agree exactly when the norm's
scale is the same for the two features a rotation mixes (weight[i] == weight[i + head_dim/2], as at
initialization); a model trained away from that has no Qwen3 form and is refused, naming the layer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from modalities.models.gpt2.model import GPT2LLM, RotaryTransform, SwiGLU
from modalities.models.norms.layer_norms import RMSLayerNorm


class HFLlamaConversionError(ValueError):
    pass


def _rms_eps(norm: nn.Module) -> float | None:
    if isinstance(norm, nn.RMSNorm):
        return norm.eps if norm.eps is not None else torch.finfo(torch.float32).eps
    if isinstance(norm, RMSLayerNorm):
        return norm.epsilon
    return None


def rotary_transform(model: GPT2LLM) -> RotaryTransform | None:
    transforms = [t for t in model.blocks[0].attn.qkv_transforms if isinstance(t, RotaryTransform)]
    return transforms[0] if transforms else None


def rope_swiglu_problems(model: GPT2LLM, architecture: str, plural: bool = False) -> list[str]:
    """Why the model is not a RoPE + SwiGLU decoder, as ``architecture`` is."""
    problems = []
    if model.poe_type != "NOPE" or rotary_transform(model) is None:
        problems.append(
            f"poe_type {model.poe_type} without a RotaryTransform; {architecture} position{'' if plural else 's'} by "
            "RoPE (poe_type: NOPE with attention_config.qkv_transforms: [RotaryTransform])"
        )
    if model.activation_type != "swiglu":
        problems.append(f"activation_type is {model.activation_type}; {architecture} {'have' if plural else 'has'} a "
                        "SwiGLU MLP")
    return problems


def llama_problems(model: GPT2LLM) -> list[str]:
    """Why this model has no exact Llama/Qwen3 form (empty if it has one)."""
    problems = rope_swiglu_problems(model, "Llama and Qwen3", plural=True)
    norms = {"lm_head_norm": model.transformer.lm_head_norm}
    for i, block in enumerate(model.blocks):
        norms[f"h.{i}.attention_norm"], norms[f"h.{i}.ffn_norm"] = block.attention_norm, block.ffn_norm
    not_rms = sorted(name for name, norm in norms.items() if _rms_eps(norm) is None)
    if not_rms:
        problems.append(f"norms other than RMSNorm ({', '.join(not_rms[:3])}...); Llama and Qwen3 use RMSNorm")
    biased = sorted(name for name, norm in norms.items() if getattr(norm, "bias", None) is not None)
    if biased:
        problems.append(
            f"RMSNorm with a bias ({', '.join(biased[:3])}...; rms_norm's bias: true); Llama's RMSNorm has none "
            "(use bias: false or pytorch_rms_norm)"
        )
    epsilons = {_rms_eps(norm) for norm in norms.values() if _rms_eps(norm) is not None}
    if len(epsilons) > 1:
        problems.append(f"the norms use different eps values {sorted(epsilons)}; Llama has one rms_norm_eps")
    attn = model.blocks[0].attn
    if attn.q_norm is not None:
        qk_eps = {_rms_eps(attn.q_norm), _rms_eps(attn.k_norm)}
        if None in qk_eps:
            problems.append("qk_norm_config is not an RMSNorm; Qwen3's q/k norms are")
        elif qk_eps != epsilons and epsilons:
            problems.append(f"qk_norm_config eps {sorted(qk_eps)} differs from the other norms' {sorted(epsilons)}")
        if getattr(attn.q_norm, "bias", None) is not None:
            problems.append("qk_norm_config has a bias; Qwen3's q/k norms have none")
        if model.config.bias:
            problems.append("bias: true with qk-norm; Qwen3 has attention biases but no MLP biases")
    return problems


def _qk_norm_problems(model: GPT2LLM) -> list[str]:
    """Layers whose trained q/k norm scale differs between the two features one rotation mixes."""
    problems = []
    for i, block in enumerate(model.blocks):
        for name in ("q_norm", "k_norm"):
            weight = getattr(block.attn, name).weight.detach().float()
            half = weight.shape[0] // 2
            if not torch.equal(weight[:half], weight[half:]):
                problems.append(f"h.{i}.attn.{name}")
    return problems


def decoder_fields(model: GPT2LLM, token_ids: dict[str, int | None] | None) -> dict[str, Any]:
    """The transformers config fields every RoPE + SwiGLU decoder (Llama, Qwen3, StableLM) shares with ours."""
    mlp: SwiGLU = model.blocks[0].mlp
    return dict(
        vocab_size=model.vocab_size,
        hidden_size=model.n_embd,
        intermediate_size=mlp.W.out_features,
        num_hidden_layers=model.n_layer,
        num_attention_heads=model.n_head_q,
        num_key_value_heads=model.n_head_kv,
        hidden_act="silu",
        max_position_embeddings=model.sequence_length,
        rope_theta=float(rotary_transform(model).base_freq),
        tie_word_embeddings=model.use_weight_tying,
        **(token_ids or {}),
    )


def hf_llama_config(model: GPT2LLM, token_ids: dict[str, int | None] | None = None):
    """The transformers config (LlamaConfig, or Qwen3Config with qk-norm); HFLlamaConversionError if none."""
    problems = llama_problems(model)
    if problems:
        raise HFLlamaConversionError(
            "this model/gpt2 configuration has no Llama or Qwen3 form:\n  - " + "\n  - ".join(problems)
        )
    attn = model.blocks[0].attn
    common = dict(decoder_fields(model, token_ids), head_dim=attn.head_dim,
                  rms_norm_eps=_rms_eps(model.transformer.lm_head_norm), attention_bias=model.config.bias)
    if attn.q_norm is None:
        from transformers import LlamaConfig

        return LlamaConfig(mlp_bias=model.config.bias, **common)
    try:
        from transformers import Qwen3Config
    except ImportError as e:
        raise HFLlamaConversionError(
            "a model with qk-norm is written as Qwen3, which needs transformers >= 4.51"
        ) from e
    return Qwen3Config(**common)


def weight_map(model: GPT2LLM) -> list[tuple[str, str]]:
    """(our parameter name, HF parameter name) for every parameter."""
    pairs = [("transformer.wte.weight", "model.embed_tokens.weight")]
    for i, block in enumerate(model.blocks):
        ours, theirs = f"transformer.h.{i}.", f"model.layers.{i}."
        pairs += [(ours + "attention_norm.weight", theirs + "input_layernorm.weight"),
                  (ours + "ffn_norm.weight", theirs + "post_attention_layernorm.weight")]
        for our_name, hf_name in (("q_attn", "q_proj"), ("k_attn", "k_proj"), ("v_attn", "v_proj"), ("c_proj", "o_proj")):
            pairs.append((f"{ours}attn.{our_name}.weight", f"{theirs}self_attn.{hf_name}.weight"))
            if model.config.bias:
                pairs.append((f"{ours}attn.{our_name}.bias", f"{theirs}self_attn.{hf_name}.bias"))
        if block.attn.q_norm is not None:
            pairs += [(ours + "attn.q_norm.weight", theirs + "self_attn.q_norm.weight"),
                      (ours + "attn.k_norm.weight", theirs + "self_attn.k_norm.weight")]
        for our_name, hf_name in (("W", "gate_proj"), ("V", "up_proj"), ("W_2", "down_proj")):
            pairs.append((f"{ours}mlp.{our_name}.weight", f"{theirs}mlp.{hf_name}.weight"))
            if model.config.bias:
                pairs.append((f"{ours}mlp.{our_name}.bias", f"{theirs}mlp.{hf_name}.bias"))
    pairs += [("transformer.lm_head_norm.weight", "model.norm.weight"), ("transformer.lm_head.weight", "lm_head.weight")]
    return pairs


@torch.no_grad()
def to_hf_llama(model: GPT2LLM, token_ids: dict[str, int | None] | None = None):
    """A transformers Llama/Qwen3 model (float32, CPU) holding our model's weights."""
    from transformers import AutoModelForCausalLM

    config = hf_llama_config(model, token_ids)
    if model.blocks[0].attn.q_norm is not None:
        layers = _qk_norm_problems(model)
        if layers:
            raise HFLlamaConversionError(
                "qk-norm: we normalize after RoPE, Qwen3 before it; the two agree only while a norm's scale is equal "
                "for the two features a rotation mixes (weight[i] == weight[i + head_dim/2]), which training changed "
                f"in {', '.join(layers[:4])}{' ...' if len(layers) > 4 else ''}: this model has no Qwen3 form"
            )
    hf_model = AutoModelForCausalLM.from_config(config).float().eval()
    ours = dict(model.named_parameters(remove_duplicate=False))
    theirs = dict(hf_model.named_parameters(remove_duplicate=False))
    for our_name, hf_name in weight_map(model):
        if hf_name in theirs:  # a tied lm_head is the embedding in HF's parameters
            theirs[hf_name].copy_(full_float(ours[our_name]))
    if model.use_weight_tying:
        hf_model.tie_weights()
    return hf_model


def full_float(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor (a DTensor gathered) on the CPU in float32."""
    full = tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor
    return full.detach().cpu().float()


# ---- import: a transformers Llama/Qwen3 (or GPT-2) -> our model/gpt2 -----------------------------------------


def gpt2_config_from_hf_llama(hf_config) -> dict[str, Any]:
    """The model/gpt2 config (plain values) of a transformers Llama or Qwen3 config."""
    model_type = hf_config.model_type
    if model_type not in ("llama", "qwen3"):
        raise HFLlamaConversionError(
            f"model_type {model_type!r}: only llama, qwen3, stablelm, gpt2 (as model/gpt2), qwen3_moe (as model/moe) "
            "and folders modalities wrote with its own modelling code are imported"
        )
    rope = getattr(hf_config, "rope_parameters", None) or {}
    theta = rope.get("rope_theta") if isinstance(rope, dict) else None
    theta = theta if theta is not None else getattr(hf_config, "rope_theta", 10000.0)
    scaling = getattr(hf_config, "rope_scaling", None)
    rope_type = (rope.get("rope_type") if isinstance(rope, dict) else None) or (
        scaling.get("rope_type", scaling.get("type")) if isinstance(scaling, dict) else None
    ) or "default"
    if not float(theta).is_integer():
        raise HFLlamaConversionError(f"rope_theta {theta} is not a whole number; model/gpt2's base_freq is an int")
    theta = int(theta)
    if rope_type != "default":
        raise HFLlamaConversionError(f"RoPE scaling ({rope_type}) has no model/gpt2 form; only plain RoPE")
    head_dim = getattr(hf_config, "head_dim", None) or hf_config.hidden_size // hf_config.num_attention_heads
    if head_dim * hf_config.num_attention_heads != hf_config.hidden_size:
        raise HFLlamaConversionError(
            f"head_dim {head_dim} x {hf_config.num_attention_heads} heads != hidden_size {hf_config.hidden_size}; "
            "model/gpt2 has head_dim = n_embd / n_head_q"
        )
    if getattr(hf_config, "hidden_act", "silu") != "silu":
        raise HFLlamaConversionError(f"hidden_act {hf_config.hidden_act!r}: model/gpt2's SwiGLU uses silu")
    if model_type == "qwen3" and getattr(hf_config, "use_sliding_window", False):
        raise HFLlamaConversionError("sliding-window attention has no model/gpt2 form")
    attention_bias = bool(getattr(hf_config, "attention_bias", False))
    mlp_bias = bool(getattr(hf_config, "mlp_bias", False))
    if attention_bias != mlp_bias:
        raise HFLlamaConversionError(
            f"attention_bias {attention_bias} and mlp_bias {mlp_bias} differ; model/gpt2 has one bias for both"
        )
    eps = hf_config.rms_norm_eps
    norm = {"norm_type": "pytorch_rms_norm", "config": {"normalized_shape": hf_config.hidden_size, "eps": eps}}
    config = rope_swiglu_gpt2_config(hf_config, norm, attention_bias, theta)
    if model_type == "qwen3":
        config["attention_config"]["qk_norm_config"] = {
            "norm_type": "pytorch_rms_norm", "config": {"normalized_shape": head_dim, "eps": eps}
        }
    return config


def rope_swiglu_gpt2_config(hf_config, norm: dict, bias: bool, theta: int) -> dict[str, Any]:
    """The model/gpt2 config (plain values) of a transformers RoPE + SwiGLU decoder with ``norm`` everywhere."""
    n_embd, heads = hf_config.hidden_size, hf_config.num_attention_heads
    return {
        "sample_key": "input_ids",
        "prediction_key": "logits",
        "poe_type": "NOPE",
        "sequence_length": hf_config.max_position_embeddings,
        "vocab_size": hf_config.vocab_size,
        "n_layer": hf_config.num_hidden_layers,
        "n_head_q": heads,
        "n_head_kv": hf_config.num_key_value_heads or heads,
        "n_embd": n_embd,
        # SwiGLU's hidden size is 2/3 of ffn_hidden rounded up to a multiple: with multiple 1, 3/2 of it gives it.
        "ffn_hidden": -(-3 * hf_config.intermediate_size // 2),
        "enforce_swiglu_hidden_dim_multiple_of": 1,
        "dropout": 0.0,
        "bias": bias,
        "activation_type": "swiglu",
        "attention_implementation": "pytorch_flash",
        "attention_config": {"qkv_transforms": [
            {"type_hint": "RotaryTransform",
             "config": {"n_embd": n_embd, "n_head": heads, "seq_length_dim": -2, "base_freq": theta}}
        ]},
        "attention_norm_config": norm,
        "ffn_norm_config": norm,
        "lm_head_norm_config": norm,
        "use_weight_tying": bool(getattr(hf_config, "tie_word_embeddings", False)),
    }


def state_dict_from_hf_llama(hf_model, our_model: GPT2LLM) -> dict[str, torch.Tensor]:
    """Our state dict (names of ``our_model``) with the HF model's weights; qk-norm scales must keep Qwen3's
    pre-RoPE norm equal to our post-RoPE one (see the module docstring)."""
    theirs = {name: p.detach().cpu().float() for name, p in hf_model.named_parameters(remove_duplicate=False)}
    if getattr(hf_model.config, "tie_word_embeddings", False) and "lm_head.weight" not in theirs:
        theirs["lm_head.weight"] = theirs["model.embed_tokens.weight"]
    state = {}
    for our_name, hf_name in weight_map(our_model):
        if hf_name not in theirs:
            raise HFLlamaConversionError(f"the transformers model has no {hf_name}")
        state[our_name] = theirs[hf_name].clone()
    bad = [
        hf_name for our_name, hf_name in weight_map(our_model)
        if our_name.endswith(("q_norm.weight", "k_norm.weight"))
        and not torch.equal(state[our_name][: state[our_name].shape[0] // 2], state[our_name][state[our_name].shape[0] // 2 :])
    ]
    if bad:
        raise HFLlamaConversionError(
            "Qwen3 normalizes q/k before RoPE and model/gpt2 after it; they agree only while each norm's scale is "
            f"equal for the two features a rotation mixes, which it is not in {', '.join(bad[:4])}"
            f"{' ...' if len(bad) > 4 else ''}: this model has no exact model/gpt2 form"
        )
    return state
