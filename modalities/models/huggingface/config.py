"""Config of ``model/huggingface_pretrained_model`` (torch-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import field_validator

from modalities.registry.types import ComponentConfig, Field


_UNSAFE_KWARGS = {
    "trust_remote_code": "it runs code from the model folder; set the field trust_remote_code: true instead, "
    "so the config says so where it is reviewed",
    "weights_only": "weights are always read as data (weights_only=True); a file that needs more may run code",
    "local_files_only": "models are always read from a local folder, never downloaded",
}


class HuggingFacePretrainedModelConfig(ComponentConfig):
    """A causal language model loaded by transformers from a local folder (never downloaded)."""

    model_type: Literal["AutoModelForCausalLM"] = Field(description="The transformers auto class that loads it.")
    model_name: Path = Field(
        description="A folder written by save_pretrained (config.json and weights), or a hub id (`gpt2`, "
        "`org/name`) in the local Hugging Face cache; nothing is downloaded."
    )
    prediction_key: str = Field(description="Key under which the model's output is returned.")
    huggingface_prediction_subscription_key: str = Field(
        description="Which field of the transformers output to return, e.g. logits."
    )
    sample_key: str = Field(description="Key of the input token ids in the input dict.")
    model_args: list[Any] | None = Field(default=None, description="Extra positional arguments of from_pretrained.")
    kwargs: dict[str, Any] | None = Field(
        default=None,
        description="Extra keyword arguments of from_pretrained (e.g. torch_dtype). Not trust_remote_code (its "
        "own field), weights_only or local_files_only (always safe loading from a local folder).",
    )
    trust_remote_code: bool = Field(
        default=False,
        description="Run the Python code shipped in the model folder (its own model classes). Only for a folder "
        "whose code you have read or trust: it runs with your permissions.",
    )

    @field_validator("kwargs")
    @classmethod
    def _no_unsafe_loading(cls, kwargs: dict[str, Any] | None) -> dict[str, Any] | None:
        for key, why in _UNSAFE_KWARGS.items():
            if kwargs and key in kwargs:
                raise ValueError(f"kwargs may not set {key}: {why}")
        return kwargs
