"""``model/moe`` to and from transformers' ``Qwen3MoeForCausalLM`` (the architecture it is built after).

Every parameter has a counterpart; the experts are the only ones whose layout differs:

    token_emb                                   model.embed_tokens
    layers.<i>.pre_attn_norm / pre_ffn_norm     model.layers.<i>.input_layernorm / post_attention_layernorm
    layers.<i>.attn.{q,k,v,o}_proj, q/k_norm    model.layers.<i>.self_attn.{q,k,v,o}_proj, q/k_norm
    layers.<i>.ffn.router                       model.layers.<i>.mlp.gate            (weight / router temperature)
    layers.<i>.ffn.experts.w1, w2  (E, f, d)    mlp.experts.gate_up_proj (E, 2f, d) = cat(w1, w2)    transformers 5
                                                mlp.experts.<e>.gate_proj / up_proj = w1[e] / w2[e]  transformers 4,
                                                                                   and the safetensors both write
    layers.<i>.ffn.experts.w3      (E, d, f)    mlp.experts.down_proj = w3;  mlp.experts.<e>.down_proj = w3[e]
    final_norm, lm_head                         model.norm, lm_head

Both normalize q and k per head before RoPE, rotate half against half, route by softmax, top-k and renormalized
top-k weights (``norm_topk_prob: true``), and compute every RMSNorm in float32. Transformers' Qwen3-MoE keeps
every routed slot (it has no capacity), so the two compute the same function exactly when our model drops no
slot. A model whose capacity drops slots even under perfectly balanced routing (``moe_capacity_factor <
moe_top_k``, as the reference's MoE configs have it) is refused unless the caller asks for the dropless model
(``dropless``, ``--dropless``); what else has no counterpart (training-only noise and dropout, the z-loss, the
router temperature, folded into the router weights) is listed by :func:`export_notes` and printed by
``modalities convert``.

Qwen3-MoE came with transformers 4.51. The folder is written for 4.51 and later as well as 5.x: the weights are
saved per expert (4.x's modules; 5.x fuses them when loading), and config.json carries the 4.x spellings
``num_experts`` and ``rope_theta`` beside 5.x's ``num_local_experts`` and ``rope_parameters``. Tested with
transformers 5.25 (loading, logits); for 4.x only the saved layout is checked (tests/models/test_hf_moe.py).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from modalities.checkpointing.compat import fit_state_dict_to_model
from modalities.models.moe.config import MoEModelConfig
from modalities.models.moe.model import QwenModel, build_moe_model

MODEL_TYPE = "qwen3_moe"

class HFMoEConversionError(ValueError):
    """A model/moe checkpoint that does not fit its config, a model/moe the export would change, or a transformers
    folder model/moe cannot hold."""


def tokens_never_over_capacity(config: MoEModelConfig) -> int | None:
    """The most tokens (batch x length) one forward may hold with every routed slot sure to fit, whatever the
    router does (an expert takes at most one slot of each token); None: any number (factor >= experts)."""
    experts, factor = config.moe_num_experts, config.moe_capacity_factor
    if factor >= experts:
        return None
    # ceil(factor N / E) >= N  <=>  factor N / E > N - 1  <=>  N < E / (E - factor)
    return max(config.moe_min_capacity, math.ceil(experts / (experts - factor)) - 1)


def capacity_problem(config: MoEModelConfig) -> str | None:
    """Why the export would compute another function than the model trained (None if it would not): a capacity
    below top_k slots per token drops slots even when the router balances perfectly, so on every long input."""
    factor, top_k, experts = config.moe_capacity_factor, config.moe_top_k, config.moe_num_experts
    if factor >= top_k:
        return None
    return (
        f"moe_capacity_factor {factor:g} is below moe_top_k {top_k}: an expert takes at most max(ceil({factor:g} x "
        f"tokens / {experts}), {config.moe_min_capacity}) slots, while even a perfectly balanced router sends it "
        f"{top_k} x tokens / {experts}, so this model drops routed slots on long inputs however it routes "
        f"(moe_overflow_policy {config.moe_overflow_policy}). Transformers' Qwen3-MoE has no capacity and keeps every "
        "slot: its logits would differ from this model's on such inputs. Pass --dropless to export it anyway as the "
        "dropless model (what model/moe computes with moe_capacity_factor >= moe_num_experts), or train with "
        "moe_capacity_factor >= moe_top_k"
    )


def export_notes(config: MoEModelConfig) -> list[str]:
    """What a Qwen3-MoE export of a model of ``config`` leaves out or changes, each naming its field (printed by
    ``modalities convert to-hf``); only the fields this config sets so that they matter."""
    notes = []
    never_over = tokens_never_over_capacity(config)
    if never_over is not None:
        notes.append(
            f"moe_capacity_factor {config.moe_capacity_factor:g}, moe_min_capacity {config.moe_min_capacity}: "
            "transformers' Qwen3-MoE has no capacity and keeps every routed slot. Its logits equal this model's on "
            f"every input of at most {never_over} token{'s' if never_over != 1 else ''} (batch x length), and on "
            "longer ones where no expert is "
            f"chosen by more than max(ceil({config.moe_capacity_factor:g} x tokens / {config.moe_num_experts}), "
            f"{config.moe_min_capacity}) tokens; where this model drops a slot (moe_overflow_policy "
            f"{config.moe_overflow_policy}), the export computes it"
        )
    training_only = [f"{name} {getattr(config, name):g}" for name in
                     ("moe_router_noise_std", "moe_router_dropout", "ffn_dropout") if getattr(config, name) > 0]
    if training_only:
        notes.append(", ".join(training_only) + ": act in training only and have no Qwen3-MoE counterpart; the "
                     "export computes what this model computes in eval mode")
    if config.moe_router_temperature != 1.0:
        notes.append(
            f"moe_router_temperature {config.moe_router_temperature:g}: Qwen3-MoE has none, so the router weights "
            f"are written divided by it (softmax(W x / t) = softmax((W / t) x)); importing the folder gives "
            "temperature 1 and those weights"
        )
    if config.moe_z_loss_coef > 0:
        notes.append(f"moe_z_loss_coef {config.moe_z_loss_coef:g}: Qwen3-MoE has no router z-loss (a training loss)")
    if config.moe_aux_loss_coef > 0:
        notes.append(
            f"moe_aux_loss_coef {config.moe_aux_loss_coef:g} is written as router_aux_loss_coef; transformers trains "
            "with its own load-balancing loss (with output_router_logits=True: every slot counted, no capacity), "
            "not loss/moe_cross_entropy's"
        )
    return notes


def moe_model_from_state_dict(config: MoEModelConfig, state_dict: dict[str, torch.Tensor]) -> QwenModel:
    """Our model/moe of ``config`` holding ``state_dict`` (float32, eval mode), checked to fit it."""
    fields = {name: getattr(config, name) for name in type(config).model_fields}
    fields.update(use_meta_device=True, seed=None)
    model = build_moe_model(**fields)
    state_dict = fit_state_dict_to_model(state_dict, model)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = [f"{name} {tuple(state_dict[name].shape)} where the config makes {tuple(expected[name].shape)}"
              for name in sorted(set(expected) & set(state_dict)) if state_dict[name].shape != expected[name].shape]
    if missing or unexpected or shapes:
        found = [f"missing {missing}"] * bool(missing) + [f"unexpected {unexpected}"] * bool(unexpected) + shapes[:4]
        raise HFMoEConversionError(
            "the checkpoint does not fit the model/moe config (" + "; ".join(found) + "); check that the config is "
            "the one the checkpoint was trained with"
        )
    model.load_state_dict(state_dict, assign=True)
    if config.tie_embeddings:
        model.lm_head.weight = model.token_emb.weight
    return model.float().eval()


def hf_qwen3_moe_config(model: QwenModel, token_ids: dict[str, int | None] | None = None):
    """transformers' Qwen3MoeConfig of our model (every block sparse, renormalized top-k weights)."""
    try:
        from transformers import Qwen3MoeConfig
    except ImportError as e:
        raise HFMoEConversionError("a model/moe is written as Qwen3-MoE, which needs transformers >= 4.51") from e
    c = model.config
    return Qwen3MoeConfig(
        vocab_size=c.vocab_size,
        hidden_size=c.d_model,
        intermediate_size=c.d_ff,
        num_hidden_layers=c.num_layers,
        num_attention_heads=c.n_heads,
        num_key_value_heads=c.n_kv_heads,
        head_dim=c.d_model // c.n_heads,
        hidden_act="silu",
        max_position_embeddings=c.max_seq_len,
        rms_norm_eps=c.norm_eps,
        rope_theta=float(c.rope_base),  # 4.x's keyword; 5.x turns it into rope_parameters
        tie_word_embeddings=c.tie_embeddings,
        attention_bias=False,
        attention_dropout=0.0,
        use_sliding_window=False,
        decoder_sparse_step=1,
        mlp_only_layers=[],
        num_experts=c.moe_num_experts,
        num_experts_per_tok=c.moe_top_k,
        moe_intermediate_size=c.moe_d_ff,
        norm_topk_prob=True,
        router_aux_loss_coef=c.moe_aux_loss_coef,
        **(token_ids or {}),
    )


def _full_float(tensor: torch.Tensor) -> torch.Tensor:
    full = tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor
    return full.detach().cpu().float()


_TOP_LEVEL = {"token_emb.weight": "model.embed_tokens.weight", "final_norm.weight": "model.norm.weight",
              "lm_head.weight": "lm_head.weight"}
_IN_BLOCK = (  # ours -> transformers', within layers.<i>.
    ("pre_attn_norm.", "input_layernorm."),
    ("pre_ffn_norm.", "post_attention_layernorm."),
    ("attn.", "self_attn."),
    ("ffn.router.", "mlp.gate."),
)
ROUTER_SUFFIX = ".mlp.gate.weight"


def hf_name(name: str) -> str:
    """transformers' name of one of our parameters other than the experts'."""
    if name in _TOP_LEVEL:
        return _TOP_LEVEL[name]
    _, index, rest = name.split(".", 2)  # layers.<i>.<rest>
    for ours, theirs in _IN_BLOCK:
        if rest.startswith(ours):
            return f"model.layers.{index}.{theirs}{rest[len(ours):]}"
    raise HFMoEConversionError(f"model/moe parameter {name} has no Qwen3-MoE counterpart")


def hf_state_dict(model: QwenModel, fused_experts: bool) -> dict[str, torch.Tensor]:
    """Our weights under transformers' names: the experts fused (transformers 5) or one module each (4.x)."""
    temperature = model.config.moe_router_temperature
    theirs = {}
    for name, tensor in model.state_dict().items():
        if ".ffn.experts.w" in name:
            continue
        tensor = _full_float(tensor)
        theirs[hf_name(name)] = tensor / temperature if hf_name(name).endswith(ROUTER_SUFFIX) else tensor
    for index, block in model.layers.items():
        prefix = f"model.layers.{index}.mlp.experts."
        w1, w2, w3 = (_full_float(w) for w in (block.ffn.experts.w1, block.ffn.experts.w2, block.ffn.experts.w3))
        if fused_experts:
            theirs[prefix + "gate_up_proj"], theirs[prefix + "down_proj"] = torch.cat([w1, w2], dim=1), w3
            continue
        for e in range(w1.shape[0]):
            theirs[f"{prefix}{e}.gate_proj.weight"] = w1[e]
            theirs[f"{prefix}{e}.up_proj.weight"] = w2[e]
            theirs[f"{prefix}{e}.down_proj.weight"] = w3[e]
    return theirs


def _has_fused_experts(hf_model) -> bool:
    return hasattr(hf_model.model.layers[0].mlp.experts, "gate_up_proj")


def check_exportable(config: MoEModelConfig, dropless: bool = False) -> None:
    """Refuse (HFMoEConversionError) a model whose export would compute another function, unless ``dropless``."""
    problem = capacity_problem(config)
    if problem is not None and not dropless:
        raise HFMoEConversionError(problem)


@torch.no_grad()
def to_hf_qwen3_moe(model: QwenModel, token_ids: dict[str, int | None] | None = None, dropless: bool = False):
    """A transformers Qwen3MoeForCausalLM (float32, CPU) holding our model's weights; ``dropless``: also a model
    whose capacity drops slots under balanced routing (see :func:`capacity_problem`)."""
    from transformers import AutoModelForCausalLM

    check_exportable(model.config, dropless)

    hf_model = AutoModelForCausalLM.from_config(hf_qwen3_moe_config(model, token_ids)).float().eval()
    state = hf_state_dict(model, _has_fused_experts(hf_model))
    missing, unexpected = hf_model.load_state_dict(state, strict=False)
    tied_head = {"lm_head.weight"} if model.config.tie_embeddings else set()
    if set(missing) - tied_head or unexpected:  # our mapping and transformers' layout disagree: a version change
        raise HFMoEConversionError(
            "this transformers version lays out Qwen3-MoE differently than expected: missing "
            f"{sorted(set(missing) - tied_head)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    if model.config.tie_embeddings:
        hf_model.tie_weights()
    return hf_model


def add_legacy_config_keys(folder: Path) -> None:
    """Give config.json the transformers 4.x spellings too (``num_experts``, ``rope_theta``), which 5.x writes as
    ``num_local_experts`` and ``rope_parameters``; either version reads both."""
    path = Path(folder) / "config.json"
    config = json.loads(path.read_text())
    if "num_experts" not in config and "num_local_experts" in config:
        config["num_experts"] = config["num_local_experts"]
    rope = config.get("rope_parameters")
    if "rope_theta" not in config and isinstance(rope, dict) and "rope_theta" in rope:
        config["rope_theta"] = rope["rope_theta"]
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


# ---- import: a transformers Qwen3-MoE -> our model/moe ------------------------------------------------------------


def _rope_theta(hf_config) -> float:
    rope = getattr(hf_config, "rope_parameters", None)
    rope = rope if isinstance(rope, dict) else {}
    scaling = getattr(hf_config, "rope_scaling", None)
    rope_type = rope.get("rope_type") or (
        scaling.get("rope_type", scaling.get("type")) if isinstance(scaling, dict) else None) or "default"
    if rope_type != "default":
        raise HFMoEConversionError(f"RoPE scaling ({rope_type}) has no model/moe form; model/moe has plain RoPE")
    theta = rope.get("rope_theta", getattr(hf_config, "rope_theta", None))
    return float(theta if theta is not None else 10000.0)


def moe_config_problems(hf_config) -> list[str]:
    """Why a transformers Qwen3-MoE config has no model/moe form (empty if it has one)."""
    problems = []
    heads, hidden = hf_config.num_attention_heads, hf_config.hidden_size
    head_dim = getattr(hf_config, "head_dim", None) or hidden // heads
    if head_dim * heads != hidden:
        problems.append(f"head_dim {head_dim} x {heads} heads != hidden_size {hidden}; model/moe's head size is "
                        "d_model / n_heads")
    if getattr(hf_config, "hidden_act", "silu") != "silu":
        problems.append(f"hidden_act {hf_config.hidden_act!r}: model/moe's experts are SwiGLU (silu)")
    if getattr(hf_config, "attention_bias", False):
        problems.append("attention_bias: true; model/moe's projections have no bias")
    if getattr(hf_config, "use_sliding_window", False):
        problems.append("use_sliding_window: true; model/moe attends to the whole causal prefix")
    if not getattr(hf_config, "norm_topk_prob", False):
        problems.append("norm_topk_prob: false (top-k probabilities used as they are); model/moe renormalizes them "
                        "to sum to 1, as norm_topk_prob: true")
    sparse_step = getattr(hf_config, "decoder_sparse_step", 1)
    dense_layers = list(getattr(hf_config, "mlp_only_layers", None) or [])
    if (sparse_step or 1) != 1 or dense_layers or not hf_config.num_experts:
        problems.append(
            f"dense layers (decoder_sparse_step {sparse_step}, mlp_only_layers {dense_layers}, num_experts "
            f"{hf_config.num_experts}); every block of model/moe is a mixture of experts"
        )
    try:
        _rope_theta(hf_config)
    except HFMoEConversionError as e:
        problems.append(str(e))
    return problems


def moe_config_from_hf(hf_config) -> dict[str, Any]:
    """The model/moe config (plain values) of a transformers Qwen3-MoE config. Its capacity keeps every slot
    (moe_capacity_factor = moe_num_experts), as transformers computes."""
    if hf_config.model_type != MODEL_TYPE:
        raise HFMoEConversionError(f"model_type {hf_config.model_type!r} is not {MODEL_TYPE}")
    problems = moe_config_problems(hf_config)
    if problems:
        raise HFMoEConversionError("this Qwen3-MoE has no model/moe form:\n  - " + "\n  - ".join(problems))
    experts = hf_config.num_experts
    return {
        "sample_key": "input_ids",
        "prediction_key": "logits",
        "vocab_size": hf_config.vocab_size,
        "max_seq_len": hf_config.max_position_embeddings,
        "d_model": hf_config.hidden_size,
        "n_heads": hf_config.num_attention_heads,
        "n_kv_heads": hf_config.num_key_value_heads or hf_config.num_attention_heads,
        "num_layers": hf_config.num_hidden_layers,
        "d_ff": hf_config.intermediate_size,
        "tie_embeddings": bool(getattr(hf_config, "tie_word_embeddings", False)),
        "norm_eps": float(hf_config.rms_norm_eps),
        "rope_base": _rope_theta(hf_config),
        "moe_num_experts": experts,
        "moe_top_k": hf_config.num_experts_per_tok,
        "moe_d_ff": hf_config.moe_intermediate_size,
        "moe_capacity_factor": float(experts),
        "moe_aux_loss_coef": float(getattr(hf_config, "router_aux_loss_coef", 0.001)),
        "moe_z_loss_coef": 0.0,
    }


def state_dict_from_hf_qwen3_moe(hf_model, config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Our state dict (model/moe's names) of a transformers Qwen3-MoE model of ``config``."""
    theirs = {name: t.detach().cpu().float() for name, t in hf_model.state_dict().items()}
    theirs.setdefault("lm_head.weight", theirs["model.embed_tokens.weight"])  # tied: one matrix
    ours = build_moe_model(**{**config, "use_meta_device": True})
    state = {}
    for name in ours.state_dict():
        if ".ffn.experts.w" not in name:
            if hf_name(name) not in theirs:
                raise HFMoEConversionError(f"the transformers model has no {hf_name(name)}")
            state[name] = theirs[hf_name(name)].clone()
    for index in ours.layers:
        prefix = f"model.layers.{index}.mlp.experts."
        if _has_fused_experts(hf_model):
            w1, w2 = theirs[prefix + "gate_up_proj"].chunk(2, dim=1)
            w3 = theirs[prefix + "down_proj"]
        else:
            w1, w2, w3 = (torch.stack([theirs[f"{prefix}{e}.{proj}.weight"] for e in range(config["moe_num_experts"])])
                          for proj in ("gate_proj", "up_proj", "down_proj"))
        for name, weight in (("w1", w1), ("w2", w2), ("w3", w3)):
            state[f"layers.{index}.ffn.experts.{name}"] = weight.contiguous().clone()
    return state
