"""Configs of ``model_initialization/composed`` and ``model/model_initialized`` (torch-free).

``model_initialization/gpt2_llama3_like``'s config is defined in ``configs/llama3.py`` and imported from there when
first asked for (``modalities.models.initialization.config.Llama3InitializerConfig`` works; see registry/lazy.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from modalities.registry.lazy import lazy_attributes
from modalities.registry.types import ComponentConfig, ComponentRef, Field, PositiveStrictInt


class ComposedModelInitializationConfig(ComponentConfig):
    """Normal initialization of a model's weights chosen by parameter name (Nguyen & Salazar style, arXiv
    2312.16903): plain for every linear/embedding weight, then optionally scaled residual projections and
    scaled embeddings."""

    model_type: Literal["gpt2", "coca"] = Field(description="Which model's parameter names to match.")
    weight_init_type: Literal["plain", "scaled", "scaled_embed"] = Field(
        description="plain: N(mean, std) for all weights, zero biases; scaled: additionally the residual output "
        "projections get std/sqrt(2*num_layers); scaled_embed: additionally the embeddings get std sqrt(0.4)."
    )
    mean: float = Field(description="Mean of the normal distributions.")
    std: float | Literal["auto"] = Field(
        description="Standard deviation of the plain init, or 'auto' for sqrt(2 / (5 * hidden_dim))"
    )
    hidden_dim: PositiveStrictInt | None = Field(default=None, description="Model width; required when std is 'auto'.")
    num_layers: PositiveStrictInt | None = Field(
        default=None, description="Number of transformer blocks; required for scaled and scaled_embed."
    )
    seed: int | None = Field(default=None, description="Seed torch's RNG with this before initializing, if set.")
    device_mesh: ComponentRef["device_mesh"] | None = Field(
        default=None,
        description="The run's mesh (the reference's per-pipeline-stage seeding, PR #426, which adds the pp rank to "
        "the seed so that stages differ). Accepted; here every pipeline stage draws its part of the whole model's "
        "weights from `seed` already, so stages differ and the weights do not depend on the layout.",
    )
    multi_device_generator_policy: Literal["ignore", "warn", "error"] = Field(
        default="warn",
        description="Accepted for Modalities configs. This implementation draws from torch's default generator of "
        "each parameter's device, so it never creates extra generators and the policy never triggers.",
    )

    @model_validator(mode="after")
    def _check_combination(self) -> "ComposedModelInitializationConfig":
        if isinstance(self.std, float) and self.std < 0:
            raise ValueError(f"std must be >= 0 or 'auto', got {self.std}")
        if self.std == "auto" and self.hidden_dim is None:
            raise ValueError("std: 'auto' needs hidden_dim (the model width) to compute 1/sqrt(hidden_dim)")
        if self.std != "auto" and self.hidden_dim is not None:
            raise ValueError("hidden_dim is only used with std: auto; remove it or set std: auto")
        if self.weight_init_type == "plain" and self.num_layers is not None:
            raise ValueError("num_layers is only used by scaled and scaled_embed; remove it for plain")
        if self.weight_init_type != "plain" and self.num_layers is None:
            raise ValueError(f"weight_init_type {self.weight_init_type} needs num_layers (the number of blocks)")
        return self


class WeightInitializedModelConfig(ComponentConfig):
    """A model whose weights are (re)initialized in place; meta-device parameters are materialized first."""

    model: ComponentRef["model"] = Field(description="The model to initialize (plain, meta-device or FSDP-sharded).")
    model_initializer: ComponentRef["model_initialization"] = Field(description="How to initialize it.")


# class name -> the module that defines it
CONFIG_CLASSES = {"Llama3InitializerConfig": "modalities.models.initialization.configs.llama3"}
__getattr__, __dir__ = lazy_attributes(__name__, CONFIG_CLASSES)
