"""Helpers of the models tests: tiny GPT-2 configs and a way to build a component from a validated config."""

from __future__ import annotations

from modalities.models.gpt2.config import GPT2LLMConfig


def build_from_config(builder, config) -> object:
    """Call a builder the way the compiler does: the validated config's fields as keyword arguments."""
    return builder(**{name: getattr(config, name) for name in type(config).model_fields})


def norm_block(n_embd: int, norm_type: str = "layer_norm") -> dict:
    if norm_type == "rms_norm":
        return {"norm_type": "rms_norm", "config": {"ndim": n_embd, "epsilon": 1e-5}}
    return {"norm_type": norm_type, "config": {"normalized_shape": n_embd, "eps": 1e-5}}


def gpt2_config_dict(**overrides) -> dict:
    n_embd = overrides.get("n_embd", 32)
    config = {
        "sample_key": "input_ids",
        "prediction_key": "logits",
        "poe_type": "ABSOLUTE",
        "sequence_length": 16,
        "vocab_size": 64,
        "n_layer": 2,
        "n_head_q": 4,
        "n_head_kv": 4,
        "n_embd": n_embd,
        "ffn_hidden": 4 * n_embd,
        "dropout": 0.0,
        "bias": True,
        "attention_config": {"qkv_transforms": []},
        "attention_implementation": "manual",
        "activation_type": "gelu",
        "attention_norm_config": norm_block(n_embd),
        "ffn_norm_config": norm_block(n_embd),
        "lm_head_norm_config": norm_block(n_embd),
        "use_weight_tying": True,
        "seed": 0,
    }
    config.update(overrides)
    return config


def rope_overrides(n_embd: int = 32, n_head_q: int = 4) -> dict:
    return {
        "poe_type": "NOPE",
        "attention_config": {
            "qkv_transforms": [
                {
                    "type_hint": "RotaryTransform",
                    "config": {"n_embd": n_embd, "n_head": n_head_q, "seq_length_dim": -2, "base_freq": 10000},
                }
            ]
        },
    }


def build_gpt2(**overrides):
    from modalities.models.gpt2.model import build_gpt2_model

    return build_from_config(build_gpt2_model, GPT2LLMConfig(**gpt2_config_dict(**overrides)))
