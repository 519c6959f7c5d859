"""A GPT-2-style decoder in the manner of nanoGPT, configured by Modalities' GPT2LLMConfig fields.

    token ids -> wte (+ wpe if ABSOLUTE) -> dropout -> n_layer x GPT2Block -> lm_head_norm -> lm_head -> logits
    GPT2Block:  x + attn(attention_norm(x)),  then  x + mlp(ffn_norm(x))

Attention has separate q/k/v projections so that key/value heads can be fewer than query heads (grouped-query
attention); RoPE is a q/k transform. The module names (transformer.h.N.attn.q_attn, mlp.c_fc, mlp.W_2, ...) are
those of Modalities' GPT2LLM, so its checkpoints, FSDP block names (GPT2Block) and init regexes carry over.
The model holds no buffers: RoPE tables and causal masks are made in forward on the input's device, so a
meta-device model only needs its parameters materialized.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from modalities.models.gpt2.config import AttentionConfig, RotaryTransformConfig
from modalities.models.model import NNModel
from modalities.models.norms.config import LayerNormWrapperConfig
from modalities.models.norms.layer_norms import build_norm

try:
    from flash_attn import flash_attn_func
except ImportError:
    flash_attn_func = None

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
    seq_len: int, head_dim: int, base_freq: float, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotation angles, each (seq_len, head_dim); angle(t, i) = t * base^(-2i/head_dim)."""
    inv_freq = 1.0 / base_freq ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, device=device, dtype=torch.float32), inv_freq)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


class IdentityTransform(nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        return q, k, v


class RotaryTransform(nn.Module):
    """Rotates each (even, odd-half) feature pair of q and k by an angle proportional to the position, so that
    q_m . k_n depends on m - n only. Works on (batch, heads, sequence, head_dim) tensors."""

    def __init__(self, n_embd: int, n_head: int, seq_length_dim: int = -2, base_freq: int = 10000):
        super().__init__()
        self.head_dim = n_embd // n_head
        self.base_freq = base_freq

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        cos, sin = rotary_cos_sin(q.shape[-2], self.head_dim, self.base_freq, q.device, q.dtype)
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
    def __init__(
        self,
        n_embd: int,
        n_head_q: int,
        n_head_kv: int,
        bias: bool,
        dropout: float,
        attention_implementation: str,
        attention_config: AttentionConfig,
    ):
        super().__init__()
        if attention_implementation == "dao_flash" and flash_attn_func is None:
            raise ImportError(
                "attention_implementation 'dao_flash' needs the flash-attn package (pip install flash-attn, CUDA "
                "only); use 'pytorch_flash' for torch's fused attention instead"
            )
        self.n_head_q, self.n_head_kv = n_head_q, n_head_kv
        self.head_dim = n_embd // n_head_q
        self.attention_implementation = attention_implementation
        self.dropout = dropout
        self.q_attn = nn.Linear(n_embd, n_head_q * self.head_dim, bias=bias)
        self.k_attn = nn.Linear(n_embd, n_head_kv * self.head_dim, bias=bias)
        self.v_attn = nn.Linear(n_embd, n_head_kv * self.head_dim, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.qkv_transforms = nn.ModuleList(build_qkv_transform(t) for t in attention_config.qkv_transforms)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q = self.q_attn(x).view(B, T, self.n_head_q, self.head_dim).transpose(1, 2)  # (B, n_head_q, T, hd)
        k = self.k_attn(x).view(B, T, self.n_head_kv, self.head_dim).transpose(1, 2)  # (B, n_head_kv, T, hd)
        v = self.v_attn(x).view(B, T, self.n_head_kv, self.head_dim).transpose(1, 2)
        for transform in self.qkv_transforms:
            q, k, v = transform(q, k, v)
        y = self._attend(q, k, v, self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, T, C)
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


def swiglu_hidden_dim(ffn_hidden: int, multiple_of: int) -> int:
    """2/3 of ffn_hidden keeps the parameter count of a gelu MLP (three matrices instead of two); rounding up to a
    multiple keeps the matrices evenly shardable."""
    return -(-int(2 * ffn_hidden / 3) // multiple_of) * multiple_of


class SwiGLU(nn.Module):
    """W_2(silu(W x) * V x) (Shazeer 2020)."""

    def __init__(self, n_embd: int, ffn_hidden: int, bias: bool, dropout: float, multiple_of: int):
        super().__init__()
        hidden_dim = swiglu_hidden_dim(ffn_hidden, multiple_of)
        self.W = nn.Linear(n_embd, hidden_dim, bias=bias)
        self.V = nn.Linear(n_embd, hidden_dim, bias=bias)
        self.W_2 = nn.Linear(hidden_dim, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.W_2(F.silu(self.W(x)) * self.V(x)))


class GPT2Block(nn.Module):
    def __init__(
        self,
        n_embd: int,
        n_head_q: int,
        n_head_kv: int,
        ffn_hidden: int,
        bias: bool,
        dropout: float,
        attention_implementation: str,
        attention_config: AttentionConfig,
        activation_type: str,
        attention_norm_config: LayerNormWrapperConfig,
        ffn_norm_config: LayerNormWrapperConfig,
        enforce_swiglu_hidden_dim_multiple_of: int,
    ):
        super().__init__()
        self.attention_norm = build_norm(attention_norm_config)
        self.attn = CausalSelfAttention(
            n_embd, n_head_q, n_head_kv, bias, dropout, attention_implementation, attention_config
        )
        self.ffn_norm = build_norm(ffn_norm_config)
        if activation_type == "swiglu":
            self.mlp = SwiGLU(n_embd, ffn_hidden, bias, dropout, enforce_swiglu_hidden_dim_multiple_of)
        else:
            self.mlp = TransformerMLP(n_embd, ffn_hidden, bias, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attention_norm(x))
        return x + self.mlp(self.ffn_norm(x))


class GPT2LLM(NNModel):
    def __init__(
        self,
        *,
        sample_key: str,
        prediction_key: str,
        poe_type: str,
        sequence_length: int,
        vocab_size: int,
        n_layer: int,
        n_head_q: int,
        n_head_kv: int,
        n_embd: int,
        ffn_hidden: int,
        dropout: float,
        bias: bool,
        attention_config: AttentionConfig,
        attention_implementation: str,
        activation_type: str,
        attention_norm_config: LayerNormWrapperConfig,
        ffn_norm_config: LayerNormWrapperConfig,
        lm_head_norm_config: LayerNormWrapperConfig,
        use_weight_tying: bool,
        seed: int | None = None,
        enforce_swiglu_hidden_dim_multiple_of: int = 256,
    ):
        super().__init__(seed=seed, weight_decay_groups=WEIGHT_DECAY_GROUPS)
        self.sample_key, self.prediction_key = sample_key, prediction_key
        self.poe_type, self.sequence_length, self.vocab_size = poe_type, sequence_length, vocab_size
        self.n_layer, self.n_embd, self.n_head_q, self.n_head_kv = n_layer, n_embd, n_head_q, n_head_kv
        self.activation_type, self.use_weight_tying = activation_type, use_weight_tying

        layers = dict(wte=nn.Embedding(vocab_size, n_embd))
        if poe_type == "ABSOLUTE":
            layers["wpe"] = nn.Embedding(sequence_length, n_embd)
        layers["drop"] = nn.Dropout(dropout)
        layers["h"] = nn.ModuleList(
            GPT2Block(
                n_embd=n_embd,
                n_head_q=n_head_q,
                n_head_kv=n_head_kv,
                ffn_hidden=ffn_hidden,
                bias=bias,
                dropout=dropout,
                attention_implementation=attention_implementation,
                attention_config=attention_config,
                activation_type=activation_type,
                attention_norm_config=attention_norm_config,
                ffn_norm_config=ffn_norm_config,
                enforce_swiglu_hidden_dim_multiple_of=enforce_swiglu_hidden_dim_multiple_of,
            )
            for _ in range(n_layer)
        )
        layers["lm_head_norm"] = build_norm(lm_head_norm_config)
        self.transformer = nn.ModuleDict(layers)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        if use_weight_tying:
            self.lm_head.weight = self.transformer.wte.weight
        self._init_gpt2_weights(std=0.02)

    def block_classes(self) -> tuple[type[nn.Module], ...]:
        return (GPT2Block,)

    @torch.no_grad()
    def _init_gpt2_weights(self, std: float) -> None:
        # GPT-2's own init, so a model built without model_initialized trains sensibly: N(0, std) weights, zero
        # biases, and residual projections scaled by 1/sqrt(2 n_layer) so the residual stream does not grow
        # with depth. On the meta device these calls cost nothing.
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for block in self.transformer.h:
            for projection in (
                block.attn.c_proj,
                block.mlp.W_2 if self.activation_type == "swiglu" else block.mlp.c_proj,
            ):
                nn.init.normal_(projection.weight, mean=0.0, std=std / math.sqrt(2 * self.n_layer))

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        input_ids = inputs[self.sample_key]
        T = input_ids.shape[1]
        x = self.transformer.wte(input_ids)
        if "wpe" in self.transformer:
            if T > self.sequence_length:
                raise ValueError(
                    f"input has {T} tokens but the absolute position table holds sequence_length={self.sequence_length}"
                )
            x = x + self.transformer.wpe(torch.arange(T, device=input_ids.device))
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.lm_head_norm(x))
        return {self.prediction_key: logits}


def build_gpt2_model(*, use_meta_device: bool | None = False, **config) -> GPT2LLM:
    """Builder of ``model/gpt2``: on the meta device when asked (parameters are materialized later)."""
    if use_meta_device:
        with torch.device("meta"):
            return GPT2LLM(**config)
    return GPT2LLM(**config)
