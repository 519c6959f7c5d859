"""Which weights a conversion exports: from a config, the model that a checkpoint loads into.

A training config holds the model twice over: the plain ``model/gpt2`` node (fresh weights) and, when it
continues from a checkpoint, a ``model/checkpointed`` (or the reference's ``fsdp1_checkpointed``) node that
loads weights into it, possibly through wrappers (FSDP, activation checkpointing, compile, init). A user who
converts such a config means the checkpoint's weights; one whose config loads no checkpoint would get random
weights, which is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHECKPOINTED_VARIANTS = ("checkpointed", "fsdp1_checkpointed")
# Wrappers whose config names the model they wrap under `model`.
WRAPPER_VARIANTS = (
    "fsdp2_wrapped",
    "fsdp_wrapped",
    "fsdp1_wrapped",
    "model_initialized",
    "activation_checkpointed",
    "activation_checkpointed_fsdp1",
    "compiled",
    "debugging_enriched",
    # parallelisms that keep the parameter names: a checkpoint of the wrapped model holds the plain model's weights
    "gpt2_tp",
    "gpt2_cp",
    "qwen_tp",
    "ep_wrapped",
)


class ModelSourceError(ValueError):
    pass


@dataclass
class CheckpointedModel:
    name: str  # the top-level key of the checkpointed node
    base_key: str  # the path of the plain model node (e.g. "model_raw")
    base_node: dict  # its {component_key, variant_key, config}
    checkpoint_path: Path
    loading_variant: str  # torch | fsdp1 | dcp | fsdp


def _node_at(config: dict, value: Any, where: str) -> tuple[str, dict]:
    """Follow a reference (or take an inline node); returns its dotted name and the node."""
    if isinstance(value, dict) and "instance_key" in value and "component_key" not in value:
        key = value["instance_key"]
        node = config
        for part in str(key).split("."):
            if not isinstance(node, dict) or part not in node:
                raise ModelSourceError(f"{where}: references '{key}', which the config does not define")
            node = node[part]
        return str(key), node
    if isinstance(value, dict) and "component_key" in value:
        return where, value
    raise ModelSourceError(f"{where}: expected a model component or a reference to one")


def base_model_of(config: dict, name: str, node: dict) -> tuple[str, dict]:
    """The plain model under a chain of wrappers."""
    seen = set()
    while node.get("component_key") == "model" and node.get("variant_key") in (*WRAPPER_VARIANTS, *CHECKPOINTED_VARIANTS):
        if name in seen:
            raise ModelSourceError(f"'{name}': the model wrappers form a cycle")
        seen.add(name)
        name, node = _node_at(config, (node.get("config") or {}).get("model"), f"{name}.config.model")
    return name, node


def find_checkpointed_model(config: dict, model_key: str | None, config_path: Path) -> CheckpointedModel:
    """The checkpointed model to export: ``model_key`` if given, else the config's only checkpointed model."""
    if model_key is not None:
        if model_key not in config:
            raise ModelSourceError(f"{config_path} has no top-level '{model_key}'")
        candidates = [model_key]
    else:
        candidates = [
            key
            for key, node in config.items()
            if isinstance(node, dict)
            and node.get("component_key") == "model"
            and node.get("variant_key") in CHECKPOINTED_VARIANTS
        ]
    if not candidates:
        models = [
            f"{key} (model/{node.get('variant_key')})"
            for key, node in config.items()
            if isinstance(node, dict) and node.get("component_key") == "model"
        ]
        raise ModelSourceError(
            f"{config_path}: no model in this config loads a checkpoint ({', '.join(models) or 'no models'}), so "
            "its weights would be freshly initialized. Convert a checkpoint folder instead "
            "(experiments/<id>/checkpoints/latest), or a config whose model is model/checkpointed"
        )
    if len(candidates) > 1:
        raise ModelSourceError(
            f"{config_path}: several checkpointed models ({', '.join(candidates)}); choose one with --model-key"
        )
    name = candidates[0]
    node = config[name]
    if node.get("variant_key") not in CHECKPOINTED_VARIANTS:
        raise ModelSourceError(
            f"{config_path}: '{name}' is model/{node.get('variant_key')}, which loads no checkpoint; its weights "
            "would be freshly initialized (give the key of a model/checkpointed node)"
        )
    node_config = node.get("config") or {}
    _, loading = _node_at(config, node_config.get("checkpoint_loading"), f"{name}.config.checkpoint_loading")
    base_key, base_node = base_model_of(config, name, node)
    return CheckpointedModel(
        name=name,
        base_key=base_key,
        base_node=base_node,
        checkpoint_path=Path(str(node_config.get("checkpoint_path"))),
        loading_variant=str(loading.get("variant_key")),
    )
