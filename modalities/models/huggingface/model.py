"""A transformers causal LM behind the dict-in, dict-out model interface."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from modalities.models.model import NNModel


def _weight_decay_groups(model: nn.Module, prefix: str) -> dict[str, list[str]]:
    """Every parameter by the kind of module that owns it: embeddings, norms, or (everything else) linear."""
    groups: dict[str, list[str]] = {"linear": [], "embedding": [], "layernorm": []}
    for module_name, module in model.named_modules():
        is_norm = "norm" in type(module).__name__.lower()
        group = "embedding" if isinstance(module, nn.Embedding) else "layernorm" if is_norm else "linear"
        for param_name, _ in module.named_parameters(recurse=False):
            full_name = ".".join(filter(None, (prefix, module_name, param_name)))
            groups[group].append(r"(^|\.)" + re.escape(full_name) + "$")
    return groups


class HuggingFacePretrainedModel(NNModel):
    def __init__(
        self,
        model_type: str,
        model_name: Path,
        prediction_key: str,
        huggingface_prediction_subscription_key: str,
        sample_key: str,
        model_args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        trust_remote_code: bool = False,
    ):
        from transformers import AutoModelForCausalLM

        from modalities.interop.hub import HubResolutionError, resolve_pretrained

        try:
            model_name = resolve_pretrained(model_name)
        except HubResolutionError as e:
            raise FileNotFoundError(f"model_name {e} (models are never downloaded)") from None
        if not (model_name / "config.json").is_file():
            raise FileNotFoundError(
                f"model_name {model_name}: no config.json there; it must be a folder written by save_pretrained, or "
                "a hub id in the local Hugging Face cache (models are never downloaded)"
            )
        huggingface_model = AutoModelForCausalLM.from_pretrained(
            model_name,
            *(model_args or []),
            local_files_only=True,
            trust_remote_code=trust_remote_code,
            **(kwargs or {}),
        )
        super().__init__(weight_decay_groups=_weight_decay_groups(huggingface_model, "huggingface_model"))
        self.huggingface_model = huggingface_model
        self.sample_key, self.prediction_key = sample_key, prediction_key
        self.huggingface_prediction_subscription_key = huggingface_prediction_subscription_key

    def block_classes(self) -> tuple[type[nn.Module], ...]:
        # transformers lists the classes that must not be split across devices: its decoder layers.
        names = set(getattr(self.huggingface_model, "_no_split_modules", None) or ())
        return tuple({type(m) for m in self.huggingface_model.modules() if type(m).__name__ in names})

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        extra = {"attention_mask": inputs["attention_mask"]} if "attention_mask" in inputs else {}
        output = self.huggingface_model(input_ids=inputs[self.sample_key], **extra)
        return {self.prediction_key: output[self.huggingface_prediction_subscription_key]}
