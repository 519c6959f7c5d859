"""State dicts written by other versions of a model, made to fit the model in hand.

Checkpoints come from the reference Modalities (any release), from our own older releases, and from wrapped
models. Their tensors are the same; only the names around them differ:
- wrapper prefixes: ``_orig_mod.`` (torch.compile, which the reference applies by replacing modules),
  ``_checkpoint_wrapped_module.`` (activation checkpointing), ``_fsdp_wrapped_module.`` (FSDP1);
- buffers we compute instead of storing: RoPE's ``qkv_transforms.<i>.inv_freq`` and the causal masks of CoCa's
  attention (``attn.bias``, ``attention.bias``, ``cross_attn.bias``), which the reference persists;
- the output head: ``lm_head.weight`` at the top level (Modalities 0.3 and our releases before 0.2) versus
  ``transformer.lm_head.weight`` (Modalities 0.4 and later, and us now).
"""

from __future__ import annotations

import re
from typing import Any, Iterable

WRAPPER_PREFIXES = ("_orig_mod.", "_checkpoint_wrapped_module.", "_fsdp_wrapped_module.")
_COMPUTED_BUFFER = re.compile(r"(^|\.)qkv_transforms\.\d+\.inv_freq$|(^|\.)(attn|attention|cross_attn)\.bias$")
_HEAD_RENAMES = {"lm_head.weight": "transformer.lm_head.weight", "transformer.lm_head.weight": "lm_head.weight"}


def strip_wrapper_prefixes(name: str) -> str:
    for prefix in WRAPPER_PREFIXES:
        name = name.replace(prefix, "")
    return name


def fit_state_dict_keys(state_dict: dict[str, Any], expected_keys: Iterable[str]) -> dict[str, Any]:
    """``state_dict`` with its keys renamed to the ones ``expected_keys`` uses, where a known difference explains
    the mismatch; keys that still do not fit are kept as they are, so a strict load names them."""
    expected = set(expected_keys)
    fitted: dict[str, Any] = {}
    for key, value in state_dict.items():
        name = strip_wrapper_prefixes(key)
        if name not in expected and _COMPUTED_BUFFER.search(name):
            continue
        if name not in expected and _HEAD_RENAMES.get(name) in expected:
            name = _HEAD_RENAMES[name]
        fitted.setdefault(name, value)
    return fitted


def fit_state_dict_to_model(state_dict: dict[str, Any], model: Any) -> dict[str, Any]:
    """Fit ``state_dict`` to ``model.state_dict()``'s names; a tied weight present under one name only is
    given under the other too (checkpoints often keep the shared matrix once)."""
    expected = [strip_wrapper_prefixes(k) for k in model.state_dict().keys()]
    fitted = fit_state_dict_keys(state_dict, expected)
    for a, b in _tied_pairs(model):
        if a in fitted and b not in fitted:
            fitted[b] = fitted[a]
        elif b in fitted and a not in fitted:
            fitted[a] = fitted[b]
    return fitted


def _tied_pairs(model: Any) -> list[tuple[str, str]]:
    names_by_tensor: dict[int, list[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        names_by_tensor.setdefault(id(parameter), []).append(strip_wrapper_prefixes(name))
    return [(names[0], other) for names in names_by_tensor.values() for other in names[1:]]
