"""Our ``model/gpt2`` to a transformers folder, in the architecture that holds its shape exactly, with its
tokenizer; and a transformers folder back to our model.

    classic GPT-2 (learned positions, gelu, LayerNorm)          -> GPT2LMHeadModel     (interop/hf_gpt2.py)
    RoPE + SwiGLU + RMSNorm (GQA, biases, tying as configured)  -> LlamaForCausalLM    (interop/hf_llama.py)
    the same with a per-head q/k RMS norm                       -> Qwen3ForCausalLM
    RoPE + SwiGLU + LayerNorm, no biases (the reference's test) -> StableLmForCausalLM (interop/hf_stablelm.py)
    model/moe (the reference's Qwen-style mixture of experts)   -> Qwen3MoeForCausalLM (interop/hf_qwen3_moe.py)

A shape none holds is refused with the reasons for each, unless the caller opts in to writing the model with its
own modelling code (``remote_code``; loaded with ``trust_remote_code=True``, see interop/hf_remote.py), which is
what the reference's converter does for every model. The tokenizer (a Hugging Face tokenizer folder, or
the config's ``pretrained_hf_tokenizer``) is saved beside the weights, and its bos/eos/pad ids go into the model
and generation configs, so ``AutoTokenizer.from_pretrained(OUT)`` encodes as our tokenizer does and
``generate`` stops at the end-of-text token. The folder is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from modalities.checkpointing.compat import fit_state_dict_to_model
from modalities.interop.hf_gpt2 import HFConversionError, hf_gpt2_problems, to_hf_gpt2
from modalities.interop.hf_llama import HFLlamaConversionError, llama_problems, to_hf_llama
from modalities.interop.hf_qwen3_moe import (
    HFMoEConversionError,
    add_legacy_config_keys,
    check_exportable,
    moe_model_from_state_dict,
    to_hf_qwen3_moe,
)
from modalities.interop.hf_remote import HFRemoteCodeError, to_hf_remote, write_code
from modalities.interop.hf_stablelm import HFStableLmConversionError, stablelm_problems, to_hf_stablelm
from modalities.models.gpt2.model import GPT2LLM, build_gpt2_model
from modalities.models.moe.config import MoEModelConfig
from modalities.models.moe.model import QwenModel

QWEN3_MOE = "qwen3_moe"


def model_from_state_dict(config, state_dict: dict[str, torch.Tensor]) -> GPT2LLM:
    """Our model of ``config`` (a GPT2LLMConfig) holding ``state_dict``, checked to fit it."""
    fields = {name: getattr(config, name) for name in type(config).model_fields}
    fields.update(use_meta_device=True, attention_implementation="manual")
    for legacy in ("attention_norm", "ffn_norm", "lm_head_norm"):
        # The 0.3 spelling gives a norm as a layer_norm component; unbuilt, it is a {variant_key, config} block.
        component = fields.pop(legacy, None)
        if isinstance(component, dict):
            fields[f"{legacy}_config"] = {"norm_type": component.get("variant_key"), "config": component.get("config")}
    model = build_gpt2_model(**fields)
    state_dict = fit_state_dict_to_model(state_dict, model)
    missing, unexpected = model.load_state_dict(state_dict, strict=False, assign=True)
    if missing or unexpected:
        raise HFConversionError(
            f"the checkpoint does not fit the model config: missing {sorted(missing)}, unexpected {sorted(unexpected)}"
        )
    if model.use_weight_tying:
        model.transformer.wte.weight = model.transformer.lm_head.weight
    return model.float().eval()


# The architecture name of a model written with its own modelling code.
REMOTE_CODE = "modalities_gpt2 (its own modelling code: load with trust_remote_code=True)"


def architecture_of(model: GPT2LLM | QwenModel, remote_code: bool = False) -> str:
    """"gpt2", "llama", "qwen3" or "stablelm" for a model/gpt2 (else REMOTE_CODE when allowed, else
    HFConversionError naming what keeps each out); "qwen3_moe" for a model/moe, which it always holds."""
    if isinstance(model, QwenModel):
        return QWEN3_MOE
    gpt2 = hf_gpt2_problems(model)
    if not gpt2:
        return "gpt2"
    llama = llama_problems(model)
    if not llama:
        return "qwen3" if model.blocks[0].attn.q_norm is not None else "llama"
    stablelm = stablelm_problems(model)
    if not stablelm:
        return "stablelm"
    if remote_code:
        return REMOTE_CODE
    raise HFConversionError(
        "no transformers architecture holds this model/gpt2 configuration exactly:\n"
        "  as GPT-2 (GPT2LMHeadModel):\n    - " + "\n    - ".join(gpt2) + "\n"
        "  as Llama/Qwen3 (LlamaForCausalLM, Qwen3ForCausalLM):\n    - " + "\n    - ".join(llama) + "\n"
        "  as StableLM (StableLmForCausalLM):\n    - " + "\n    - ".join(stablelm) + "\n"
        "to export it anyway with its own modelling code (loaded with trust_remote_code=True, as the reference "
        "does), pass --remote-code"
    )


def _hf_model(model: GPT2LLM | QwenModel, architecture: str, token_ids: dict[str, int | None] | None,
              dropless: bool = False):
    try:
        if architecture == QWEN3_MOE:
            return to_hf_qwen3_moe(model, token_ids, dropless)
        if architecture == "gpt2":
            return to_hf_gpt2(model)
        if architecture == "stablelm":
            return to_hf_stablelm(model, token_ids)
        if architecture == REMOTE_CODE:
            return to_hf_remote(model, token_ids)
        return to_hf_llama(model, token_ids)
    except (HFLlamaConversionError, HFStableLmConversionError, HFRemoteCodeError, HFMoEConversionError) as e:
        raise HFConversionError(str(e)) from None


def load_tokenizer(location: str | os.PathLike):
    """A Hugging Face tokenizer from a folder, a tokenizer.json, or a hub id in the local cache."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from modalities.interop.hub import resolve_pretrained

    path = resolve_pretrained(location)
    if path.is_file():
        return PreTrainedTokenizerFast(tokenizer_file=str(path))
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def _token_ids(tokenizer) -> dict[str, int | None]:
    return {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def export_model_to_hf(
    model: GPT2LLM | QwenModel, out_dir: str | os.PathLike, tokenizer: Any = None, remote_code: bool = False,
    dropless: bool = False,
) -> tuple[Path, str]:
    """Write ``model`` (and ``tokenizer``) as a transformers folder; returns it and the architecture used.
    ``remote_code``: where no transformers architecture holds a model/gpt2, write it with its own modelling code.
    ``dropless``: write a model/moe whose capacity drops slots under balanced routing as the dropless model
    (refused otherwise; interop/hf_qwen3_moe.py)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir} already exists and is not an empty folder; choose a new output folder")
    architecture = architecture_of(model, remote_code)
    token_ids = _token_ids(tokenizer) if tokenizer is not None else None
    if tokenizer is not None and len(tokenizer) > model.vocab_size:
        raise HFConversionError(
            f"the tokenizer has {len(tokenizer)} ids but the model's vocab_size is {model.vocab_size}: it is not "
            "this model's tokenizer"
        )
    hf_model = _hf_model(model, architecture, token_ids, dropless)
    if token_ids is not None:
        for key, value in token_ids.items():
            setattr(hf_model.config, key, value)
            setattr(hf_model.generation_config, key, value)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        hf_model.save_pretrained(tmp_dir)
        if architecture == REMOTE_CODE:
            write_code(tmp_dir)
        if architecture == QWEN3_MOE:
            add_legacy_config_keys(tmp_dir)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp_dir)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp_dir, out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return out_dir, architecture


def export_state_dict_to_hf(
    config, state_dict, out_dir, tokenizer=None, remote_code=False, dropless=False
) -> tuple[Path, str]:
    """A model/gpt2 or model/moe config (GPT2LLMConfig, MoEModelConfig) and a full state dict (a consolidated
    checkpoint) as a transformers folder."""
    if isinstance(config, MoEModelConfig):
        try:
            check_exportable(config, dropless)
            model = moe_model_from_state_dict(config, state_dict)
        except HFMoEConversionError as e:
            raise HFConversionError(str(e)) from None
    else:
        model = model_from_state_dict(config, state_dict)
    return export_model_to_hf(model, out_dir, tokenizer, remote_code, dropless)


# ---- import -------------------------------------------------------------------------------------------------


def gpt2_config_from_hf_gpt2(hf_config) -> dict[str, Any]:
    """The model/gpt2 config (plain values) of a transformers GPT-2 config."""
    if hf_config.activation_function not in ("gelu", "gelu_new", "gelu_pytorch_tanh"):
        raise HFConversionError(f"activation_function {hf_config.activation_function!r} has no model/gpt2 form")
    n_embd, eps = hf_config.n_embd, hf_config.layer_norm_epsilon
    norm = {"norm_type": "layer_norm", "config": {"normalized_shape": n_embd, "eps": eps, "bias": True}}
    return {
        "sample_key": "input_ids",
        "prediction_key": "logits",
        "poe_type": "ABSOLUTE",
        "sequence_length": hf_config.n_positions,
        "vocab_size": hf_config.vocab_size,
        "n_layer": hf_config.n_layer,
        "n_head_q": hf_config.n_head,
        "n_head_kv": hf_config.n_head,
        "n_embd": n_embd,
        "ffn_hidden": hf_config.n_inner or 4 * n_embd,
        "dropout": 0.0,
        "bias": True,
        "activation_type": "gelu",
        "attention_implementation": "pytorch_flash",
        "attention_config": {"qkv_transforms": []},
        "attention_norm_config": norm,
        "ffn_norm_config": norm,
        "lm_head_norm_config": norm,
        "use_weight_tying": bool(getattr(hf_config, "tie_word_embeddings", True)),
    }


def import_from_hf(location: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A transformers GPT-2, Llama, Qwen3 or StableLM folder, or one we wrote with its own modelling code (or a hub
    id in the cache) -> (model/gpt2 config, state dict). No modelling code of the folder is run."""
    variant, config, state = import_model_from_hf(location)
    if variant != "gpt2":
        raise HFConversionError(f"{location} is a model/{variant}, not a model/gpt2; read it with import_model_from_hf")
    return config, state


def import_model_from_hf(location: str | os.PathLike) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    """A transformers folder (or a hub id in the cache) -> (our variant_key, its config, state dict): GPT-2, Llama,
    Qwen3, StableLM and folders we wrote with their own modelling code as model/gpt2, Qwen3-MoE as model/moe. No
    modelling code of the folder is run."""
    import json

    from transformers import AutoConfig, AutoModelForCausalLM

    from modalities.interop.hf_gpt2 import load_hf_gpt2_weights
    from modalities.interop.hf_llama import gpt2_config_from_hf_llama, state_dict_from_hf_llama
    from modalities.interop.hf_remote import MODEL_TYPE, read_remote_export
    from modalities.interop.hf_stablelm import gpt2_config_from_hf_stablelm, state_dict_from_hf_stablelm
    from modalities.interop.hub import resolve_pretrained

    path = resolve_pretrained(location)
    config_file = path / "config.json"
    if config_file.is_file() and json.loads(config_file.read_text()).get("model_type") == MODEL_TYPE:
        try:
            return ("gpt2", *read_remote_export(path))
        except HFRemoteCodeError as e:
            raise HFConversionError(str(e)) from None
    hf_config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    if hf_config.model_type == QWEN3_MOE:
        return ("moe", *_import_qwen3_moe(path, hf_config))
    readers = {
        "gpt2": (gpt2_config_from_hf_gpt2, None),
        "stablelm": (gpt2_config_from_hf_stablelm, state_dict_from_hf_stablelm),
    }
    to_config, to_state = readers.get(hf_config.model_type, (gpt2_config_from_hf_llama, state_dict_from_hf_llama))
    try:
        config = to_config(hf_config)
        hf_model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True).float().eval()
        ours = build_gpt2_model(**{**config, "attention_implementation": "manual", "seed": 0})
        if to_state is None:
            load_hf_gpt2_weights(ours, hf_model)
            state = {name: t.detach().clone() for name, t in ours.state_dict().items()}
        else:
            state = to_state(hf_model, ours)
    except (HFLlamaConversionError, HFStableLmConversionError) as e:
        raise HFConversionError(str(e)) from None
    return "gpt2", config, state


def _import_qwen3_moe(path: Path, hf_config) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from transformers import AutoModelForCausalLM

    from modalities.interop.hf_qwen3_moe import moe_config_from_hf, state_dict_from_hf_qwen3_moe

    try:
        config = moe_config_from_hf(hf_config)  # refused before any weight is read
        hf_model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True).float().eval()
        return config, state_dict_from_hf_qwen3_moe(hf_model, config)
    except HFMoEConversionError as e:
        raise HFConversionError(str(e)) from None
