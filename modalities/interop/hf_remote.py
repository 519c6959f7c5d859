"""A ``model/gpt2`` as a transformers folder with its own modelling code, for shapes no transformers architecture
holds exactly (``modalities convert to-hf --remote-code``), as the reference's converter always does.

The folder holds ``configuration_modalities_gpt2.py`` and ``modeling_modalities_gpt2.py`` (see
``interop/remote_code/``; they import only torch and transformers) and a config.json whose ``auto_map`` names
them, so ``AutoModelForCausalLM.from_pretrained(OUT, trust_remote_code=True)`` builds the model. Parameter names
are ours, so the weights are written unchanged; the config also keeps the model/gpt2 config, so reading the
folder back (``from-hf``) runs none of its code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from modalities.interop.hf_llama import full_float
from modalities.models.gpt2.model import GPT2LLM, RotaryTransform
from modalities.models.norms.layer_norms import RMSLayerNorm

MODEL_TYPE = "modalities_gpt2"
CODE_FILES = ("configuration_modalities_gpt2.py", "modeling_modalities_gpt2.py")
AUTO_MAP = {
    "AutoConfig": "configuration_modalities_gpt2.ModalitiesGPT2Config",
    "AutoModelForCausalLM": "modeling_modalities_gpt2.ModalitiesGPT2ForCausalLM",
}


class HFRemoteCodeError(ValueError):
    pass


def describe_norm(norm: nn.Module) -> dict[str, Any]:
    """A norm layer as the modelling code's ``{kind, eps, weight, bias}``."""
    if isinstance(norm, nn.LayerNorm):
        return {"kind": "layer_norm", "eps": norm.eps, "weight": norm.weight is not None, "bias": norm.bias is not None}
    if isinstance(norm, nn.RMSNorm):
        eps = norm.eps if norm.eps is not None else torch.finfo(torch.float32).eps
        return {"kind": "rms_norm", "eps": eps, "weight": norm.weight is not None, "bias": False}
    if isinstance(norm, RMSLayerNorm):
        return {"kind": "float32_rms_norm", "eps": norm.epsilon, "weight": True, "bias": norm.bias is not None}
    raise HFRemoteCodeError(f"{type(norm).__name__} is not a norm the exported modelling code knows")


def remote_config(model: GPT2LLM, token_ids: dict[str, int | None] | None = None):
    from modalities.interop.remote_code.configuration_modalities_gpt2 import ModalitiesGPT2Config

    block, attn = model.blocks[0], model.blocks[0].attn
    rotary = [t for t in attn.qkv_transforms if isinstance(t, RotaryTransform)]
    mlp = block.mlp
    hidden = mlp.W.out_features if model.activation_type == "swiglu" else mlp.c_fc.out_features
    # Norms given as built layer_norm components (the 0.3 spelling) are already described in *_norm_config.
    plain = model.config.model_dump(
        exclude={"attention_norm", "ffn_norm", "lm_head_norm", "use_meta_device"}, mode="json"
    )
    config = ModalitiesGPT2Config(
        vocab_size=model.vocab_size,
        hidden_size=model.n_embd,
        num_hidden_layers=model.n_layer,
        num_attention_heads=model.n_head_q,
        num_key_value_heads=model.n_head_kv,
        intermediate_size=hidden,
        max_position_embeddings=model.sequence_length,
        position_embedding_type="rope" if rotary else ("absolute" if model.poe_type == "ABSOLUTE" else "none"),
        rope_theta=rotary[0].base_freq if rotary else 10000,
        hidden_act=model.activation_type,
        bias=model.config.bias,
        attention_norm=describe_norm(block.attention_norm),
        ffn_norm=describe_norm(block.ffn_norm),
        final_norm=describe_norm(model.transformer.lm_head_norm),
        qk_norm=describe_norm(attn.q_norm) if attn.q_norm is not None else None,
        modalities_config=plain,
        tie_word_embeddings=model.use_weight_tying,
        **(token_ids or {}),
    )
    config.auto_map = dict(AUTO_MAP)
    config.architectures = ["ModalitiesGPT2ForCausalLM"]
    return config


@torch.no_grad()
def to_hf_remote(model: GPT2LLM, token_ids: dict[str, int | None] | None = None):
    """The exported model (float32, CPU): the modelling code's class holding our weights under our names."""
    from modalities.interop.remote_code.modeling_modalities_gpt2 import ModalitiesGPT2ForCausalLM

    hf_model = ModalitiesGPT2ForCausalLM(remote_config(model, token_ids)).float().eval()
    state = {name: full_float(t) for name, t in model.state_dict().items()}
    missing, unexpected = hf_model.load_state_dict(state, strict=False)
    missing = [name for name in missing if not (model.use_weight_tying and name == "transformer.lm_head.weight")]
    if missing or unexpected:
        raise HFRemoteCodeError(f"the modelling code does not fit the model: missing {missing}, unexpected {unexpected}")
    if model.use_weight_tying:
        hf_model.transformer.lm_head.weight = hf_model.transformer.wte.weight
    return hf_model


def write_code(folder: Path) -> None:
    """Copy the modelling code into ``folder`` (beside its config.json)."""
    source = Path(__file__).parent / "remote_code"
    for name in CODE_FILES:
        shutil.copyfile(source / name, folder / name)


# ---- import: read back without running the folder's code --------------------------------------------------


def read_remote_export(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(model/gpt2 config, state dict) of a folder this module wrote, from config.json and the safetensors."""
    from safetensors.torch import load_file

    config = json.loads((folder / "config.json").read_text())
    plain = config.get("modalities_config")
    if not isinstance(plain, dict):
        raise HFRemoteCodeError(f"{folder / 'config.json'} has no modalities_config: not written by modalities")
    index = folder / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else ["model.safetensors"]
    state: dict[str, torch.Tensor] = {}
    for name in files:
        state.update(load_file(str(folder / name)))
    if plain.get("use_weight_tying", True):
        head = state.get("transformer.lm_head.weight", state.get("transformer.wte.weight"))
        state["transformer.lm_head.weight"] = state["transformer.wte.weight"] = head
    return plain, {name: t.float() for name, t in state.items()}
