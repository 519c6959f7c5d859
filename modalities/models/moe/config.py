"""Configs of ``model/moe`` (the reference's Qwen-style mixture-of-experts decoder), ``loss/moe_cross_entropy``
and ``model/qwen_tp`` (torch-free; ``model/ep_wrapped``'s is in training/config.py beside the other wrappers).

The model's fields, names and defaults are the reference's ``QwenModelConfig``, so its YAML files load
unchanged; ``moe_experts_backend``, ``use_meta_device`` and ``seed`` are ours (their defaults do what the
reference does).
Cross-field rules are checked here with messages that name the fields; ``validate`` reports the ones that
span components (expert-parallel degree, loss and model) in the training contract.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import model_validator

from modalities.registry.types import ComponentConfig, ComponentRef, Field, PositiveStrictInt, warn_config


class MoEModelConfig(ComponentConfig):
    """A Qwen3-MoE-style decoder: RMSNorm pre-norm blocks, grouped-query attention with q/k RMSNorm and RoPE, and
    in every block a routed mixture of SwiGLU experts (top-k routing with a capacity per expert)."""

    vocab_size: PositiveStrictInt = Field(description="Number of token ids (rows of the embedding).")
    max_seq_len: PositiveStrictInt = Field(description="Longest input sequence.")
    d_model: PositiveStrictInt = Field(description="Model width.")
    n_heads: PositiveStrictInt = Field(description="Query heads (head size = d_model / n_heads).")
    n_kv_heads: PositiveStrictInt = Field(description="Key/value heads; fewer than n_heads: grouped-query attention.")
    num_layers: PositiveStrictInt = Field(description="Number of transformer blocks (each with a mixture of experts).")
    d_ff: PositiveStrictInt = Field(
        description="Hidden size of a dense feed-forward layer. Accepted as in the reference, where every block is a "
        "mixture of experts and no dense layer uses it (it becomes intermediate_size in a Hugging Face export)."
    )
    sample_key: str = Field(default="input_ids", description="Key of the input token ids in the input dict.")
    prediction_key: str = Field(default="logits", description="Key under which the logits are returned.")
    attn_dropout: float = Field(
        default=0.0, ge=0.0, lt=1.0,
        description="Accepted as in the reference, whose attention never applies it (dropout_p 0); so here.",
    )
    ffn_dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="Dropout on each expert's output.")
    tie_embeddings: bool = Field(default=False, description="The output head shares the token embedding matrix.")
    norm_eps: float = Field(default=1e-6, gt=0.0, description="Epsilon of every RMSNorm (blocks, q/k, final).")
    rope_base: float = Field(default=1000000.0, gt=0.0, description="RoPE base: wavelengths grow as base^(2i/d).")
    moe_num_experts: PositiveStrictInt = Field(default=128, description="Routed experts per block (E).")
    moe_top_k: PositiveStrictInt = Field(default=8, description="Experts each token is routed to (k <= E).")
    moe_d_ff: PositiveStrictInt = Field(default=768, description="Hidden size of one SwiGLU expert.")
    moe_capacity_factor: float = Field(
        default=1.25, gt=0.0,
        description="Tokens an expert takes per forward: max(ceil(factor x tokens / E), moe_min_capacity); routed "
        "slots beyond it, in token order, are over capacity. Not multiplied by top_k (as in the reference), so "
        "with k > 1 a factor below k drops slots even under perfect balance; E x tokens-per-batch / tokens (or "
        "moe_capacity_factor >= E) drops none.",
    )
    moe_min_capacity: PositiveStrictInt = Field(default=4, description="Lower bound of the capacity per expert.")
    moe_overflow_policy: Literal["drop", "residual"] = Field(
        default="residual",
        description="What a token gets when none of its slots fit: residual passes its input through (the block "
        "adds it to the residual stream once more), drop gives zeros. Tokens with some slots kept get those.",
    )
    moe_router_noise_std: float = Field(
        default=0.0, ge=0.0, description="Gaussian noise added to the router logits in training."
    )
    moe_router_temperature: float = Field(default=1.0, gt=0.0, description="Router logits are divided by this.")
    moe_router_dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="Dropout on the router's input.")
    moe_aux_loss_coef: float = Field(
        default=0.001, ge=0.0,
        description="Load-balancing loss coef x E x sum_e(mean router probability_e x share of kept slots_e), per "
        "block, added to the loss by loss/moe_cross_entropy; 0 leaves it out.",
    )
    moe_z_loss_coef: float = Field(
        default=0.0, ge=0.0, description="Router z-loss coef x mean(logsumexp(logits)^2), added with the above."
    )
    moe_experts_backend: Literal["auto", "grouped_mm", "padded_bmm", "looped"] = Field(
        default="auto",
        description="How the experts run: grouped_mm (torch._grouped_mm: one call for all experts; one kernel on "
        "CUDA sm90+ in bf16, torch's loop of matmuls on CPU in fp32/bf16/fp16), padded_bmm (every expert's tokens "
        "padded to the largest count, one batched matmul; any device), looped (one matmul per expert, the "
        "reference's way). auto: grouped_mm where it runs, else padded_bmm or looped, whichever the token counts "
        "per expert make cheaper.",
    )
    use_meta_device: bool = Field(
        default=False, description="Build on the meta device; model_initialized or FSDP wrapping materializes it."
    )
    seed: int | None = Field(default=None, description="Seed torch's RNG with this before building, if set.")

    @model_validator(mode="after")
    def _check_shapes(self) -> "MoEModelConfig":
        problems = []
        if self.d_model % self.n_heads:
            problems.append(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        elif (self.d_model // self.n_heads) % 2:
            problems.append(f"RoPE needs an even head size, d_model / n_heads = {self.d_model // self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            problems.append(
                f"n_heads ({self.n_heads}) must be divisible by n_kv_heads ({self.n_kv_heads}): each key/value head "
                "serves a whole group of query heads"
            )
        if self.moe_top_k > self.moe_num_experts:
            problems.append(
                f"moe_top_k ({self.moe_top_k}) cannot exceed moe_num_experts ({self.moe_num_experts}): a token is "
                "routed to k different experts"
            )
        if problems:
            raise ValueError("; ".join(problems))
        if self.attn_dropout > 0:
            warn_config("attn_dropout is accepted but not applied, as in the reference (its attention runs with "
                        "dropout_p 0)", field="attn_dropout")
        return self


def moe_capacity(capacity_factor: float, num_tokens: int, num_experts: int, min_capacity: int) -> int:
    """Slots an expert takes in one forward of ``num_tokens`` tokens (the reference's rule)."""
    return max(math.ceil(capacity_factor * num_tokens / num_experts), min_capacity)


class MoECrossEntropyLossConfig(ComponentConfig):
    """Mean token cross-entropy plus the auxiliary (load-balancing, z) losses of the model's MoE blocks."""

    target_key: str = Field(description="Key of the target token ids [B, T] in the batch's targets.")
    prediction_key: str = Field(description="Key of the logits [B, T, V] in the model's output.")
    model: ComponentRef["model"] = Field(  # noqa: F821
        description="The MoE model (model/moe, or its pipeline part) whose blocks' auxiliary losses are added."
    )
    tag: str = Field(default="MoECrossEntropyLoss", description="Name under which the loss is logged.")


class QwenTPModelConfig(ComponentConfig):
    """model/moe split over the mesh's tensor-parallel dimension (attention heads and the vocabulary)."""

    model: ComponentRef["model"] = Field(description="The model/moe to parallelize (after ep_wrapped, before "  # noqa: F821
                                         "FSDP2).")
    device_mesh: ComponentRef["device_mesh"] = Field(  # noqa: F821
        description="A mesh with a `tp` dimension (device_mesh.config.tensor_parallel_degree above 1)."
    )
