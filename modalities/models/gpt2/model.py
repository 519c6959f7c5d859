"""A GPT-2-style decoder in the manner of nanoGPT, configured by Modalities' GPT2LLMConfig fields.

    token ids -> wte (+ wpe if ABSOLUTE) -> drop -> n_layer x GPT2Block -> lm_head_norm -> lm_head -> logits
    GPT2Block:  x + attn(attention_norm(x)),  then  x + mlp(ffn_norm(x))

Attention has separate q/k/v projections so that key/value heads can be fewer than query heads (grouped-query
attention); RoPE is a q/k transform, optionally followed by a per-head q/k norm.

Same YAML, same model as Modalities: module names (``transformer.h.<i>.attn.q_attn``, ``transformer.lm_head``, ...),
the order in which modules are created (so a ``seed`` draws the same initial weights), which of two tied weights
survives (the head's), and torch's default initialization are all the reference's. Its checkpoints therefore load
unchanged, and its init regexes, FSDP block names (GPT2Block) and layer FQNs (``transformer.h``) mean the same.
The blocks live in a ModuleDict keyed "0", "1", ... so that a pipeline stage can drop layers and keep the names.
RoPE tables and causal masks are computed in forward on the input's device, so a meta-device model only needs
its parameters materialized.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import nn

from modalities.models.gpt2.config import GPT2LLMConfig, RotaryTransformConfig, swiglu_hidden_dim
from modalities.models.model import NNModel
from modalities.models.norms.layer_norms import build_norm

try:
    from flash_attn import flash_attn_func
except ImportError:
    flash_attn_func = None

# The key of a batch's samples holding each token's position (batch, tokens), set where the tokens a rank holds
# are not the whole sequence in order (context parallelism); absent, positions are 0, 1, 2, ...
POSITIONS_KEY = "position_ids"
# The same for a forward given a tensor (a pipeline stage, fed token ids or hidden states by torch's schedule,
# which passes nothing else): the positions of the tokens held, (1, tokens), set around the schedule's step.
_HELD_POSITIONS: ContextVar[torch.Tensor | None] = ContextVar("modalities_held_positions", default=None)


@contextlib.contextmanager
def held_token_positions(positions: torch.Tensor | None) -> Iterator[None]:
    """Within: a forward given a tensor takes ``positions`` (1 or batch rows, tokens) as its tokens' positions."""
    token = _HELD_POSITIONS.set(positions)
    try:
        yield
    finally:
        _HELD_POSITIONS.reset(token)


def held_positions() -> torch.Tensor | None:
    """The positions set by ``held_token_positions`` around this forward (None: 0, 1, 2, ...)."""
    return _HELD_POSITIONS.get()

# Parameter-name regexes (matched with re.search) by group; optimizers exclude groups from weight decay by name.
# Every parameter falls in exactly one group.
WEIGHT_DECAY_GROUPS = {
    "linear": [r"\.attn\.", r"\.mlp\.", r"(^|\.)lm_head\."],
    "embedding": [r"\.wte\.", r"\.wpe\."],
    "layernorm": [r"\.attention_norm\.", r"\.ffn_norm\.", r"\.lm_head_norm\."],
}


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rotary_cos_sin(
    seq_len: int, head_dim: int, base_freq: float, device: torch.device, dtype: torch.dtype,
    positions: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotation angles, each (seq_len, head_dim); angle(t, i) = t * base^(-2i/head_dim).
    ``positions`` (batch, seq_len): the positions of the tokens held, when they are not 0..seq_len-1 (a context-
    parallel rank's share of the sequence); the results are then (batch, 1, seq_len, head_dim)."""
    inv_freq = 1.0 / base_freq ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    if positions is None:
        angles = torch.outer(torch.arange(seq_len, device=device, dtype=torch.float32), inv_freq)
    else:
        angles = (positions.to(torch.float32)[..., None] * inv_freq).unsqueeze(1)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


class IdentityTransform(nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor | None = None):
        return q, k, v


class RotaryTransform(nn.Module):
    """Rotates each (even, odd-half) feature pair of q and k by an angle proportional to the position, so that
    q_m . k_n depends on m - n only. Works on (batch, heads, sequence, head_dim) tensors.

    The reference keeps the frequencies in a persistent ``inv_freq`` buffer, so its checkpoints carry one per
    layer; ours computes them in forward, and loaders drop those keys (see ``checkpointing/compat.py``)."""

    def __init__(self, n_embd: int, n_head: int, seq_length_dim: int = -2, base_freq: int = 10000):
        super().__init__()
        self.head_dim = n_embd // n_head
        self.base_freq = base_freq

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor | None = None):
        cos, sin = rotary_cos_sin(q.shape[-2], self.head_dim, self.base_freq, q.device, q.dtype, positions)
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin, v


def build_qkv_transform(transform_config) -> nn.Module:
    if isinstance(transform_config.config, RotaryTransformConfig):
        return RotaryTransform(**transform_config.config.model_dump())
    return IdentityTransform()


def manual_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + causal mask) v for (B, heads, T, d) tensors with equal head counts."""
    T = q.shape[-2]
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    future = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(diagonal=1)
    weights = F.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
    return F.dropout(weights, p=dropout_p) @ v


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPT2LLMConfig):
        super().__init__()
        if config.attention_implementation == "dao_flash" and flash_attn_func is None:
            raise ImportError(
                "attention_implementation 'dao_flash' needs the flash-attn package (pip install flash-attn, CUDA "
                "only); use 'pytorch_flash' for torch's fused attention instead"
            )
        n_embd, bias = config.n_embd, config.bias
        self.n_head_q, self.n_head_kv = config.n_head_q, config.n_head_kv
        self.head_dim = n_embd // config.n_head_q
        self.attention_implementation = config.attention_implementation
        self.dropout = config.dropout
        self.q_attn = nn.Linear(n_embd, self.n_head_q * self.head_dim, bias=bias)
        self.k_attn = nn.Linear(n_embd, self.n_head_kv * self.head_dim, bias=bias)
        self.v_attn = nn.Linear(n_embd, self.n_head_kv * self.head_dim, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.qkv_transforms = nn.ModuleList(build_qkv_transform(t) for t in config.attention_config.qkv_transforms)
        # qk-norm: each head's query and key normalized over head_dim (after RoPE, as the reference does), so
        # attention logits are steered by the angle between q and k rather than their lengths.
        qk_norm = config.attention_config.qk_norm_config
        self.q_norm = build_norm(qk_norm) if qk_norm is not None else None
        self.k_norm = build_norm(qk_norm) if qk_norm is not None else None

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.q_attn(x).view(B, T, self.n_head_q, self.head_dim).transpose(1, 2)  # (B, n_head_q, T, hd)
        k = self.k_attn(x).view(B, T, self.n_head_kv, self.head_dim).transpose(1, 2)  # (B, n_head_kv, T, hd)
        v = self.v_attn(x).view(B, T, self.n_head_kv, self.head_dim).transpose(1, 2)
        for transform in self.qkv_transforms:
            q, k, v = transform(q, k, v, positions)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        y = self._attend(q, k, v, self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, T, -1)  # -1: under tensor parallelism this rank's heads only
        return self.resid_dropout(self.c_proj(y))

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float) -> torch.Tensor:
        # Query head h reads key/value head h // (n_head_q // n_head_kv) in all three implementations.
        if self.attention_implementation == "manual":
            group = self.n_head_q // self.n_head_kv
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
            return manual_causal_attention(q, k, v, dropout_p)
        if self.attention_implementation == "pytorch_flash":
            return F.scaled_dot_product_attention(
                q, k, v, dropout_p=dropout_p, is_causal=True, enable_gqa=self.n_head_q != self.n_head_kv
            )
        y = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), dropout_p=dropout_p, causal=True)
        return y.transpose(1, 2)


class TransformerMLP(nn.Module):
    def __init__(self, n_embd: int, ffn_hidden: int, bias: bool, dropout: float):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, ffn_hidden, bias=bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(ffn_hidden, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class SwiGLU(nn.Module):
    """W_2(silu(W x) * V x) (Shazeer 2020). No dropout on its output: the reference's SwiGLU has none."""

    def __init__(self, n_embd: int, ffn_hidden: int, bias: bool, multiple_of: int):
        super().__init__()
        hidden_dim = swiglu_hidden_dim(ffn_hidden, multiple_of)
        self.W = nn.Linear(n_embd, hidden_dim, bias=bias)
        self.V = nn.Linear(n_embd, hidden_dim, bias=bias)
        self.W_2 = nn.Linear(hidden_dim, n_embd, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.W_2(F.silu(self.W(x)) * self.V(x))


class GPT2Block(nn.Module):
    def __init__(self, config: GPT2LLMConfig, attention_norm: nn.Module, ffn_norm: nn.Module):
        super().__init__()
        # Norms first, then attention, then MLP: the reference's creation order, which fixes the RNG draws.
        self.attention_norm = attention_norm
        self.ffn_norm = ffn_norm
        self.attn = CausalSelfAttention(config)
        if config.activation_type == "swiglu":
            self.mlp = SwiGLU(config.n_embd, config.ffn_hidden, config.bias, config.enforce_swiglu_hidden_dim_multiple_of)
        else:
            self.mlp = TransformerMLP(config.n_embd, config.ffn_hidden, config.bias, config.dropout)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        normed = self.attention_norm(x)
        # One input when positions are implicit: a tensor-parallel input plan declares what attention takes.
        x = x + (self.attn(normed) if positions is None else self.attn(normed, positions))
        return x + self.mlp(self.ffn_norm(x))


class _NormFactory:
    """A fresh norm per use: from a ``{norm_type, config}`` block, or a copy of a built ``layer_norm`` component
    (the way Modalities 0.3 configs give ``attention_norm``/``ffn_norm``/``lm_head_norm``)."""

    def __init__(self, wrapper_config, module: nn.Module | None):
        self.wrapper_config, self.module = wrapper_config, module

    def __call__(self) -> nn.Module:
        return copy.deepcopy(self.module) if self.module is not None else build_norm(self.wrapper_config)


class GPT2LLM(NNModel):
    """Takes the fields of ``GPT2LLMConfig`` as keyword arguments (as the reference's GPT2LLM does)."""

    def __init__(self, **fields):
        attention_norm = fields.pop("attention_norm", None)
        ffn_norm = fields.pop("ffn_norm", None)
        lm_head_norm = fields.pop("lm_head_norm", None)
        fields.pop("use_meta_device", None)
        config = GPT2LLMConfig.model_validate(
            {**fields, **_legacy_norm_placeholders(attention_norm, ffn_norm, lm_head_norm)}
        )
        super().__init__(seed=config.seed, weight_decay_groups=WEIGHT_DECAY_GROUPS)
        self.config = config
        self.sample_key, self.prediction_key = config.sample_key, config.prediction_key
        self.poe_type, self.sequence_length, self.vocab_size = config.poe_type, config.sequence_length, config.vocab_size
        self.n_layer, self.n_embd = config.n_layer, config.n_embd
        self.n_head_q, self.n_head_kv = config.n_head_q, config.n_head_kv
        self.activation_type, self.use_weight_tying = config.activation_type, config.use_weight_tying

        attention_norms = _NormFactory(config.attention_norm_config, attention_norm)
        ffn_norms = _NormFactory(config.ffn_norm_config, ffn_norm)
        head_norm = _NormFactory(config.lm_head_norm_config, lm_head_norm)
        n_embd = config.n_embd
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, n_embd),
                wpe=nn.Embedding(config.sequence_length, n_embd) if config.poe_type == "ABSOLUTE" else nn.Identity(),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleDict(
                    {str(i): GPT2Block(config, attention_norms(), ffn_norms()) for i in range(config.n_layer)}
                ),
                lm_head_norm=head_norm(),
                lm_head=nn.Linear(n_embd, config.vocab_size, bias=False),
            )
        )
        if config.use_weight_tying:
            # The head's weight is the one kept (and its default init): wte is pointed at it, as in the reference.
            self.transformer.wte.weight = self.transformer.lm_head.weight

    @property
    def blocks(self) -> list[GPT2Block]:
        return list(self.transformer.h.values())

    def block_classes(self) -> tuple[type[nn.Module], ...]:
        return (GPT2Block,)

    def forward(self, inputs: dict[str, torch.Tensor] | torch.Tensor) -> dict[str, torch.Tensor] | torch.Tensor:
        """A dict holding ``sample_key`` -> ``{prediction_key: logits}``; a tensor of token ids -> logits
        (the form pipeline stages pass between each other)."""
        if isinstance(inputs, dict):
            logits = self.forward_tokens(inputs[self.sample_key], inputs.get(POSITIONS_KEY))
            return {self.prediction_key: logits}
        return self.forward_tokens(inputs, held_positions())

    def forward_tokens(self, input_ids: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """``positions`` (batch, tokens): where each token stands in its sequence, when the tokens held are not the
        whole sequence in order (context parallelism gives each rank a share); 0, 1, 2, ... when None."""
        # A pipeline stage holds only some of these modules; it runs the ones it has.
        T = input_ids.shape[1]
        if T > self.sequence_length:
            raise ValueError(
                f"input has {T} tokens but the model's sequence_length is {self.sequence_length}; "
                "raise sequence_length in the model config or shorten the samples"
            )
        layers = self.transformer
        x = layers.wte(input_ids) if "wte" in layers else input_ids
        if "wpe" in layers and isinstance(layers.wpe, nn.Embedding):
            x = x + layers.wpe(torch.arange(T, device=x.device) if positions is None else positions)
        if "drop" in layers:
            x = layers.drop(x)
        for block in layers.h.values() if "h" in layers else ():
            x = block(x) if positions is None else block(x, positions)
        if "lm_head_norm" in layers:
            x = layers.lm_head_norm(x)
        return layers.lm_head(x) if "lm_head" in layers else x


def _legacy_norm_placeholders(*modules: nn.Module | None) -> dict:
    """GPT2LLMConfig wants the *_norm_config blocks; a model given built norm modules describes them by size."""
    names = ("attention_norm_config", "ffn_norm_config", "lm_head_norm_config")
    placeholders = {}
    for name, module in zip(names, modules):
        if module is not None:
            placeholders[name] = describe_norm_module(module)
    return placeholders


def describe_norm_module(module: nn.Module) -> dict:
    """The ``{norm_type, config}`` block of a built norm layer."""
    from modalities.models.norms.layer_norms import RMSLayerNorm

    if isinstance(module, nn.LayerNorm):
        return {
            "norm_type": "layer_norm",
            "config": {
                "normalized_shape": module.normalized_shape[0],
                "eps": module.eps,
                "elementwise_affine": module.elementwise_affine,
                "bias": module.bias is not None,
            },
        }
    if isinstance(module, nn.RMSNorm):
        eps = module.eps if module.eps is not None else 1e-5
        return {"norm_type": "pytorch_rms_norm", "config": {"normalized_shape": module.normalized_shape[0], "eps": eps}}
    if isinstance(module, RMSLayerNorm):
        return {
            "norm_type": "rms_norm",
            "config": {"ndim": module.weight.shape[0], "epsilon": module.epsilon, "bias": module.bias is not None},
        }
    raise TypeError(f"{type(module).__name__} is not a norm layer model/gpt2 knows (LayerNorm, RMSNorm)")


def build_gpt2_model(*, use_meta_device: bool | None = False, **config) -> GPT2LLM:
    """Builder of ``model/gpt2``: on the meta device when asked (parameters are materialized later)."""
    if use_meta_device:
        with torch.device("meta"):
            return GPT2LLM(**config)
    return GPT2LLM(**config)
