"""Weights between ``model/gpt2`` and ``transformers.GPT2LMHeadModel``, in both directions.

HF GPT-2 is a fixed architecture: learned absolute positions, exact-erf or tanh gelu, LayerNorm everywhere with
one epsilon, multi-head attention (as many key/value heads as query heads). Our GPT-2 configurations inside that
space convert exactly; a few outside it still have an exact HF form and are written that way (no biases ->
zero biases, NOPE -> an all-zero position table, LayerNorm without affine -> unit scale, zero shift). Anything
else (swiglu, RoPE, RMSNorm, grouped-query attention, mixed norm epsilons) raises HFConversionError naming
each problem. Our q/k/v projections are nn.Linear (out, in); HF fuses them into one Conv1D (in, 3*out).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from modalities.checkpointing.compat import fit_state_dict_to_model
from modalities.models.gpt2.model import GPT2LLM, RotaryTransform, build_gpt2_model

if TYPE_CHECKING:
    from transformers import GPT2Config, GPT2LMHeadModel

    from modalities.models.gpt2.config import GPT2LLMConfig


class HFConversionError(ValueError):
    """The model cannot be represented by (or loaded from) transformers' GPT-2."""


def norm_layers(model: GPT2LLM) -> dict[str, nn.Module]:
    norms = {"transformer.lm_head_norm": model.transformer.lm_head_norm}
    for i, block in enumerate(model.blocks):
        norms[f"transformer.h.{i}.attention_norm"] = block.attention_norm
        norms[f"transformer.h.{i}.ffn_norm"] = block.ffn_norm
    return norms


def hf_gpt2_problems(model: GPT2LLM) -> list[str]:
    """Why this model has no exact transformers GPT-2 form (empty if it has one)."""
    problems = []
    if model.activation_type != "gelu":
        problems.append(f"activation_type is {model.activation_type}; HF GPT-2 has a gelu MLP only")
    if model.n_head_kv != model.n_head_q:
        problems.append(
            f"grouped-query attention (n_head_kv={model.n_head_kv} < n_head_q={model.n_head_q}); HF GPT-2 has one "
            "key/value head per query head"
        )
    if any(isinstance(t, RotaryTransform) for block in model.blocks for t in block.attn.qkv_transforms):
        problems.append("RotaryTransform (RoPE); HF GPT-2 only has learned absolute position embeddings")
    return problems + layer_norm_problems(model, "HF GPT-2", "layer_norm_epsilon")


def layer_norm_problems(model: GPT2LLM, architecture: str, eps_field: str) -> list[str]:
    """Why the model's norms are not those of an architecture with LayerNorm everywhere and one epsilon."""
    problems = []
    norms = norm_layers(model)
    not_layer_norm = sorted(name for name, norm in norms.items() if not isinstance(norm, nn.LayerNorm))
    if not_layer_norm:
        problems.append(f"norms other than layer_norm ({', '.join(not_layer_norm)}); {architecture} uses LayerNorm only")
    epsilons = {norm.eps for norm in norms.values() if isinstance(norm, nn.LayerNorm)}
    if len(epsilons) > 1:
        problems.append(f"the norms use different eps values {sorted(epsilons)}; {architecture} has one {eps_field}")
    return problems


def hf_gpt2_config_from_model(model: GPT2LLM) -> "GPT2Config":
    """The transformers GPT2Config of the same architecture; HFConversionError if there is none."""
    from transformers import GPT2Config

    problems = hf_gpt2_problems(model)
    if problems:
        raise HFConversionError(
            "this model/gpt2 configuration cannot be written as a transformers GPT-2 model:\n  - "
            + "\n  - ".join(problems)
        )
    dropout = model.transformer.drop.p
    has_gpt2_special_tokens = model.vocab_size > 50256
    return GPT2Config(
        vocab_size=model.vocab_size,
        n_positions=model.sequence_length,
        n_embd=model.n_embd,
        n_layer=model.n_layer,
        n_head=model.n_head_q,
        n_inner=model.blocks[0].mlp.c_fc.out_features,
        activation_function="gelu",
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        layer_norm_epsilon=model.transformer.lm_head_norm.eps,
        tie_word_embeddings=model.use_weight_tying,
        bos_token_id=50256 if has_gpt2_special_tokens else None,
        eos_token_id=50256 if has_gpt2_special_tokens else None,
    )


def hf_gpt2_config_from_gpt2_config(config: "GPT2LLMConfig") -> "GPT2Config":
    """The transformers GPT2Config for a model/gpt2 config, checked without allocating weights."""
    fields = {name: getattr(config, name) for name in type(config).model_fields}
    fields["use_meta_device"] = True
    if fields["attention_implementation"] == "dao_flash":
        fields["attention_implementation"] = "pytorch_flash"  # irrelevant to the weights; avoids needing flash-attn
    return hf_gpt2_config_from_model(build_gpt2_model(**fields))


def _weight_map(model: GPT2LLM) -> list[tuple[str | None, str, str]]:
    """(our parameter name or None, HF parameter name, how): how is 'copy', 'transpose', or for a parameter we
    do not have, the constant HF holds instead ('zeros' / 'ones'). q/k/v rows map to column slices of c_attn."""
    entries: list[tuple[str | None, str, str]] = []
    ours = dict(model.named_parameters(remove_duplicate=False))

    def add(our_name: str, hf_name: str, how: str, absent: str) -> None:
        entries.append((our_name, hf_name, how) if our_name in ours else (None, hf_name, absent))

    add("transformer.wte.weight", "transformer.wte.weight", "copy", "zeros")
    add("transformer.wpe.weight", "transformer.wpe.weight", "copy", "zeros")
    norm_pairs = [("transformer.lm_head_norm", "transformer.ln_f")]
    for i in range(model.n_layer):
        ours_prefix, hf_prefix = f"transformer.h.{i}", f"transformer.h.{i}"
        norm_pairs += [
            (f"{ours_prefix}.attention_norm", f"{hf_prefix}.ln_1"),
            (f"{ours_prefix}.ffn_norm", f"{hf_prefix}.ln_2"),
        ]
        for part in ("q", "k", "v"):
            add(
                f"{ours_prefix}.attn.{part}_attn.weight", f"{hf_prefix}.attn.c_attn.weight:{part}", "transpose", "zeros"
            )
            add(f"{ours_prefix}.attn.{part}_attn.bias", f"{hf_prefix}.attn.c_attn.bias:{part}", "copy", "zeros")
        for ours_name, hf_name in (
            ("attn.c_proj", "attn.c_proj"),
            ("mlp.c_fc", "mlp.c_fc"),
            ("mlp.c_proj", "mlp.c_proj"),
        ):
            add(f"{ours_prefix}.{ours_name}.weight", f"{hf_prefix}.{hf_name}.weight", "transpose", "zeros")
            add(f"{ours_prefix}.{ours_name}.bias", f"{hf_prefix}.{hf_name}.bias", "copy", "zeros")
    for ours_norm, hf_norm in norm_pairs:
        add(f"{ours_norm}.weight", f"{hf_norm}.weight", "copy", "ones")
        add(f"{ours_norm}.bias", f"{hf_norm}.bias", "copy", "zeros")
    if not model.use_weight_tying:
        add("transformer.lm_head.weight", "lm_head.weight", "copy", "zeros")
    return entries


def _hf_view(hf_params: dict[str, torch.Tensor], hf_name: str, n_embd: int) -> torch.Tensor:
    """The HF tensor (or the q/k/v slice of the fused c_attn) that an entry names."""
    name, _, part = hf_name.partition(":")
    tensor = hf_params[name]
    if not part:
        return tensor
    index = "qkv".index(part)
    return tensor[..., index * n_embd : (index + 1) * n_embd]


def _full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    # FSDP2 shards parameters as DTensors; conversion needs the whole tensor.
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


@torch.no_grad()
def load_hf_gpt2_weights(our_model: GPT2LLM, hf_model: "GPT2LMHeadModel") -> None:
    """Copy a transformers GPT2LMHeadModel's weights into our GPT-2 of the same architecture, in place."""
    expected = hf_gpt2_config_from_model(our_model)
    hf_config = hf_model.config
    mismatches = [
        f"{key}: ours {getattr(expected, key)}, HF {getattr(hf_config, key)}"
        for key in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head")
        if getattr(expected, key) != getattr(hf_config, key)
    ]
    if (hf_config.n_inner or 4 * hf_config.n_embd) != expected.n_inner:
        mismatches.append(f"ffn_hidden: ours {expected.n_inner}, HF {hf_config.n_inner or 4 * hf_config.n_embd}")
    if mismatches:
        raise HFConversionError("the HF GPT-2 model has a different shape: " + "; ".join(mismatches))
    if hf_config.activation_function not in ("gelu", "gelu_new", "gelu_pytorch_tanh"):
        raise HFConversionError(f"HF activation_function {hf_config.activation_function!r} is not a gelu")
    if hf_config.activation_function != "gelu":
        warnings.warn(
            f"the HF model uses {hf_config.activation_function} (tanh-approximated gelu) and model/gpt2 the exact "
            "gelu; the weights load, but logits differ slightly (about 1e-3)",
            stacklevel=2,
        )

    ours = dict(our_model.named_parameters(remove_duplicate=False))
    hf_params = dict(hf_model.named_parameters(remove_duplicate=False))
    for our_name, hf_name, how in _weight_map(our_model):
        source = _hf_view(hf_params, hf_name, our_model.n_embd)
        if our_name is None:
            constant = torch.zeros_like(source) if how == "zeros" else torch.ones_like(source)
            if not torch.equal(source, constant):
                raise HFConversionError(
                    f"HF parameter {hf_name} is not all {how}, but our configuration has no such parameter "
                    "(check bias, poe_type and the norms' elementwise_affine/bias)"
                )
            continue
        value = source.t() if how == "transpose" else source
        ours[our_name].copy_(value)


@torch.no_grad()
def to_hf_gpt2(our_model: GPT2LLM) -> "GPT2LMHeadModel":
    """A transformers GPT2LMHeadModel (float32, CPU) holding our model's weights."""
    from transformers import GPT2LMHeadModel

    hf_model = GPT2LMHeadModel(hf_gpt2_config_from_model(our_model)).float().eval()
    ours = {
        name: _full_tensor(p).detach().cpu().float() for name, p in our_model.named_parameters(remove_duplicate=False)
    }
    hf_params = dict(hf_model.named_parameters(remove_duplicate=False))
    for our_name, hf_name, how in _weight_map(our_model):
        target = _hf_view(hf_params, hf_name, our_model.n_embd)
        if our_name is None:
            target.fill_(0.0 if how == "zeros" else 1.0)
        else:
            target.copy_(ours[our_name].t() if how == "transpose" else ours[our_name])
    return hf_model


def export_to_hf(our_model: GPT2LLM, out_dir: str | os.PathLike) -> Path:
    """Write our GPT-2 as a folder that ``transformers.AutoModelForCausalLM.from_pretrained`` loads.

    The folder is written under a temporary name beside ``out_dir`` and renamed into place, so an interrupted
    export never leaves a half-written model. ``out_dir`` must not exist yet (or be an empty folder).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir} already exists and is not an empty folder; choose a new output folder")
    hf_model = to_hf_gpt2(our_model)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        hf_model.save_pretrained(tmp_dir)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp_dir, out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return out_dir


def export_state_dict_to_hf(
    config: "GPT2LLMConfig", state_dict: dict[str, torch.Tensor], out_dir: str | os.PathLike
) -> Path:
    """Write a model/gpt2 checkpoint (its config and a full state dict, e.g. from a consolidated training
    checkpoint) as a transformers folder. The configuration is checked before any weight is touched."""
    hf_gpt2_config_from_gpt2_config(config)
    fields = {name: getattr(config, name) for name in type(config).model_fields}
    fields.update(use_meta_device=True, attention_implementation="manual")
    model = build_gpt2_model(**fields)
    state_dict = fit_state_dict_to_model(state_dict, model)
    missing, unexpected = model.load_state_dict(state_dict, strict=False, assign=True)
    if missing or unexpected:
        raise HFConversionError(
            f"the checkpoint does not fit the model config: missing {sorted(missing)}, unexpected {sorted(unexpected)}"
        )
    if model.use_weight_tying:
        model.transformer.wte.weight = model.transformer.lm_head.weight
    return export_to_hf(model, out_dir)
