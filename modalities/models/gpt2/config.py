"""Config of ``model/gpt2`` (torch-free).

The fields are those of Modalities' ``GPT2LLMConfig``, so its YAML files load unchanged. Cross-field rules
(head counts, norm sizes, rotary settings) are checked here, before anything is built, with messages that name
the fields involved.

The configs of the parallelized variants (model/gpt2_tp, model/gpt2_cp) are defined in ``configs/parallel.py`` and
imported from there when first asked for (``modalities.models.gpt2.config.GPT2ModelTPConfig`` works; see
registry/lazy.py): a config that names only model/gpt2 does not define them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from modalities.models.norms.config import LayerNormWrapperConfig
from modalities.registry.lazy import lazy_attributes
from modalities.registry.types import (
    ComponentConfig,
    ComponentRef,
    Field,
    PositiveStrictInt,
    StrictInt,
    empty_list,
)


class RotaryTransformConfig(ComponentConfig):
    """Rotary position embedding (RoPE, Su et al. 2021) applied to queries and keys."""

    n_embd: PositiveStrictInt = Field(description="Model width; must equal the model's n_embd.")
    n_head: PositiveStrictInt = Field(
        description="Query heads; must equal the model's n_head_q (head size = n_embd / n_head)."
    )
    seq_length_dim: StrictInt = Field(
        default=-2, description="Dimension of the (batch, heads, sequence, head_dim) tensors holding positions."
    )
    base_freq: PositiveStrictInt = Field(default=10000, description="RoPE base: wavelengths grow as base_freq^(2i/d).")


class IdentityTransformConfig(ComponentConfig):
    """Leaves queries, keys and values unchanged."""


class QueryKeyValueTransformConfig(ComponentConfig):
    """One transform applied to queries, keys and values before attention."""

    type_hint: Literal["RotaryTransform", "IdentityTransform"] = Field(description="Which transform.")
    config: RotaryTransformConfig | IdentityTransformConfig = Field(
        description="Its settings: {n_embd, n_head, seq_length_dim, base_freq} for RotaryTransform, "
        "{} for IdentityTransform."
    )

    @model_validator(mode="after")
    def _config_matches_type(self) -> "QueryKeyValueTransformConfig":
        expected = RotaryTransformConfig if self.type_hint == "RotaryTransform" else IdentityTransformConfig
        if not isinstance(self.config, expected):
            raise ValueError(f"type_hint {self.type_hint} needs a config of the form {expected.__name__}")
        return self


class AttentionConfig(ComponentConfig):
    """Settings of the attention layers."""

    qkv_transforms: list[QueryKeyValueTransformConfig] = Field(
        default_factory=empty_list, description="Transforms applied in order to q, k, v (e.g. one RotaryTransform)."
    )
    qk_norm_config: LayerNormWrapperConfig | None = Field(
        default=None,
        description="qk-norm: a norm over each head's query and key (size n_embd / n_head_q), applied after the "
        "q/k transforms; stabilizes training of large models.",
    )


class GPT2LLMConfig(ComponentConfig):
    """A GPT-2-style decoder-only transformer (pre-norm blocks, optional GQA, RoPE and SwiGLU)."""

    sample_key: str = Field(description="Key of the input token ids (batch, sequence) in the input dict.")
    prediction_key: str = Field(description="Key under which the logits (batch, sequence, vocab) are returned.")
    use_meta_device: bool | None = Field(
        default=False,
        description="Build the parameters on the meta device (no memory); a later step (model_initialized or "
        "FSDP wrapping) materializes and initializes them.",
    )
    poe_type: Literal["ABSOLUTE", "NOPE"] = Field(
        description="ABSOLUTE: learned position embeddings; NOPE: none (use a RotaryTransform for positions)."
    )
    sequence_length: PositiveStrictInt = Field(description="Longest input sequence (size of the position table).")
    vocab_size: PositiveStrictInt = Field(description="Number of token ids (rows of the embedding).")
    n_layer: PositiveStrictInt = Field(description="Number of transformer blocks.")
    n_head_q: PositiveStrictInt = Field(description="Number of query heads.")
    n_head_kv: PositiveStrictInt = Field(
        description="Number of key/value heads; fewer than n_head_q gives grouped-query attention."
    )
    n_embd: PositiveStrictInt = Field(description="Model width (embedding size).")
    ffn_hidden: PositiveStrictInt = Field(
        description="Hidden size of the feed-forward layer (gelu); swiglu uses about 2/3 of it, see "
        "enforce_swiglu_hidden_dim_multiple_of."
    )
    dropout: float = Field(
        ge=0.0, lt=1.0, description="Dropout on embeddings, attention weights and residual branches."
    )
    bias: bool = Field(description="Use biases in the linear layers.")
    attention_config: AttentionConfig = Field(description="Query/key/value transforms (e.g. rotary embeddings).")
    attention_implementation: Literal["manual", "pytorch_flash", "dao_flash"] = Field(
        description="manual: explicit softmax(QK^T)V; pytorch_flash: torch scaled_dot_product_attention; "
        "dao_flash: the flash-attn package (CUDA, must be installed)."
    )
    activation_type: Literal["gelu", "swiglu"] = Field(description="Feed-forward type: gelu MLP or SwiGLU.")
    attention_norm_config: LayerNormWrapperConfig | None = Field(
        default=None, description="Norm before each attention layer (required unless `attention_norm` is given)."
    )
    ffn_norm_config: LayerNormWrapperConfig | None = Field(
        default=None, description="Norm before each feed-forward layer (required unless `ffn_norm` is given)."
    )
    lm_head_norm_config: LayerNormWrapperConfig | None = Field(
        default=None, description="Norm before the output projection (required unless `lm_head_norm` is given)."
    )
    attention_norm: ComponentRef["layer_norm"] | None = Field(  # noqa: F821
        default=None,
        description="Modalities 0.3 spelling of attention_norm_config: a layer_norm component (each block gets a "
        "copy).",
    )
    ffn_norm: ComponentRef["layer_norm"] | None = Field(  # noqa: F821
        default=None, description="Modalities 0.3 spelling of ffn_norm_config: a layer_norm component."
    )
    lm_head_norm: ComponentRef["layer_norm"] | None = Field(  # noqa: F821
        default=None, description="Modalities 0.3 spelling of lm_head_norm_config: a layer_norm component."
    )
    use_weight_tying: bool = Field(
        default=True,
        description="Share the token embedding matrix with the output projection. Defaults to true, what configs "
        "written before the field existed (Modalities 0.3) always got.",
    )
    seed: int | None = Field(default=None, description="Seed torch's RNG with this before building, if set.")
    enforce_swiglu_hidden_dim_multiple_of: PositiveStrictInt = Field(
        default=256,
        description="SwiGLU hidden size is int(2*ffn_hidden/3) rounded up to a multiple of this (even sharding).",
    )

    @model_validator(mode="after")
    def _check_shapes(self) -> "GPT2LLMConfig":
        problems = []
        if self.n_embd % self.n_head_q:
            problems.append(
                f"n_embd ({self.n_embd}) must be divisible by n_head_q ({self.n_head_q}) "
                "so every head has the same size"
            )
        if self.n_head_q % self.n_head_kv:
            problems.append(
                f"n_head_q ({self.n_head_q}) must be divisible by n_head_kv ({self.n_head_kv}): each key/value head "
                "serves a whole group of query heads"
            )
        for name in ("attention_norm_config", "ffn_norm_config", "lm_head_norm_config"):
            legacy = name.removesuffix("_config")
            wrapper, module = getattr(self, name), getattr(self, legacy)
            if wrapper is None and module is None:
                problems.append(f"{name} is required (the norm's {{norm_type, config}})")
            elif wrapper is not None and module is not None:
                problems.append(f"give {name} or {legacy}, not both")
            elif wrapper is not None and wrapper.normalized_size != self.n_embd:
                problems.append(f"{name}.config normalizes {wrapper.normalized_size} features but n_embd is {self.n_embd}")
        qk_norm = self.attention_config.qk_norm_config
        head_dim = self.n_embd // self.n_head_q
        if qk_norm is not None and not self.n_embd % self.n_head_q and qk_norm.normalized_size != head_dim:
            problems.append(
                f"attention_config.qk_norm_config normalizes {qk_norm.normalized_size} features but each head has "
                f"n_embd / n_head_q = {head_dim}"
            )
        for i, transform in enumerate(self.attention_config.qkv_transforms):
            if not isinstance(transform.config, RotaryTransformConfig):
                continue
            where = f"attention_config.qkv_transforms[{i}].config"
            if self.poe_type != "NOPE":
                problems.append(f"{where}: RotaryTransform encodes positions itself; set poe_type: NOPE")
            if (transform.config.n_embd, transform.config.n_head) != (self.n_embd, self.n_head_q):
                problems.append(
                    f"{where}: n_embd/n_head ({transform.config.n_embd}/{transform.config.n_head}) must equal the "
                    f"model's n_embd/n_head_q ({self.n_embd}/{self.n_head_q})"
                )
            elif (self.n_embd // self.n_head_q) % 2:
                problems.append(f"{where}: RoPE needs an even head size, got {self.n_embd // self.n_head_q}")
            if transform.config.seq_length_dim not in (-2, 2):
                problems.append(f"{where}: seq_length_dim must be -2 (the sequence dim of (B, heads, T, head_dim))")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def swiglu_hidden_dim(ffn_hidden: int, multiple_of: int) -> int:
    """2/3 of ffn_hidden keeps the parameter count of a gelu MLP (three matrices instead of two); rounding up to a
    multiple keeps the matrices evenly shardable."""
    return -(-int(2 * ffn_hidden / 3) // multiple_of) * multiple_of


def tensor_parallel_misfits(degree: int, sizes: dict[str, int | None]) -> list[str]:
    """The sizes a tensor_parallel_degree does not divide, as "name size" (sizes not known yet are skipped):
    model/gpt2_tp splits heads, vocabulary and the MLP's hidden units across the tp ranks."""
    return [f"{name} {size}" for name, size in sizes.items() if size is not None and size % degree]


# class name -> the module that defines it
CONFIG_CLASSES = {
    "GPT2ModelTPConfig": "modalities.models.gpt2.configs.parallel",
    "GPT2ModelCPConfig": "modalities.models.gpt2.configs.parallel",
}
__getattr__, __dir__ = lazy_attributes(__name__, CONFIG_CLASSES)
