"""Config of ``model/huggingface_pretrained_model`` (torch-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from modalities.registry.types import ComponentConfig, Field


class HuggingFacePretrainedModelConfig(ComponentConfig):
    """A causal language model loaded by transformers from a local folder (never downloaded)."""

    model_type: Literal["AutoModelForCausalLM"] = Field(description="The transformers auto class that loads it.")
    model_name: Path = Field(description="Local folder written by save_pretrained (config.json and weights).")
    prediction_key: str = Field(description="Key under which the model's output is returned.")
    huggingface_prediction_subscription_key: str = Field(
        description="Which field of the transformers output to return, e.g. logits."
    )
    sample_key: str = Field(description="Key of the input token ids in the input dict.")
    model_args: list[Any] | None = Field(default=None, description="Extra positional arguments of from_pretrained.")
    kwargs: dict[str, Any] | None = Field(
        default=None, description="Extra keyword arguments of from_pretrained (e.g. torch_dtype)."
    )
