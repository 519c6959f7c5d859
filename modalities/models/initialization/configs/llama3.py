"""Config of ``model_initialization/gpt2_llama3_like`` (torch-free)."""

from __future__ import annotations

from modalities.registry.types import ComponentConfig, Field, PositiveStrictInt


class Llama3InitializerConfig(ComponentConfig):
    """Llama 3's initialization (as in torchtitan) for a Llama-shaped model/gpt2 (SwiGLU, no biases)."""

    num_layers: PositiveStrictInt = Field(description="Number of blocks (for the residual projections' std).")
    n_embd: PositiveStrictInt = Field(description="Model width (the output head's std is 1/sqrt(n_embd)).")
    depth_init: bool = Field(
        default=True,
        description="Residual projections get std 0.02/sqrt(2 (layer + 1)); false: 0.02/sqrt(2 num_layers) for all.",
    )
