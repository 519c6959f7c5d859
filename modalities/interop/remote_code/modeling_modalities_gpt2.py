"""A Modalities ``model/gpt2`` as a transformers causal LM (written by ``modalities convert to-hf --remote-code``
for shapes no transformers architecture holds; load with ``trust_remote_code=True``). Needs only torch and
transformers.

    token ids -> wte (+ wpe) -> n x block -> lm_head_norm -> lm_head -> logits
    block:  x + attn(attention_norm(x)),  then  x + mlp(ffn_norm(x))

Parameter names are those of Modalities' model (``transformer.h.<i>.attn.q_attn.weight``, ...), so the weights
are its checkpoint's unchanged. Attention has grouped key/value heads (query head h reads key/value head
h // (heads / kv heads)), RoPE rotates feature i with feature i + head_dim/2, and the optional q/k norm runs
after RoPE, as in Modalities. There is no key/value cache: generation recomputes the prefix at every step.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_modalities_gpt2 import ModalitiesGPT2Config


class ModalitiesNorm(nn.Module):
    def __init__(self, size, spec):
        super().__init__()
        self.kind, self.eps, self.size = spec["kind"], float(spec["eps"]), size
        self.weight = nn.Parameter(torch.ones(size)) if spec["weight"] else None
        self.bias = nn.Parameter(torch.zeros(size)) if spec["bias"] else None

    def forward(self, x):
        if self.kind == "layer_norm":
            return F.layer_norm(x, (self.size,), self.weight, self.bias, self.eps)
        if self.kind == "float32_rms_norm":  # Modalities' rms_norm: normalized in float32, then scaled
            x_float = x.float()
            x = (x_float * torch.rsqrt(x_float.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x)
        else:  # torch's RMSNorm
            x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        x = x * self.weight if self.weight is not None else x
        return x + self.bias if self.bias is not None else x


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rotary_cos_sin(positions, head_dim, base, dtype):
    """cos, sin of angle(t, i) = t * base^(-2i/head_dim), (batch, 1, tokens, head_dim)."""
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    angles = (positions.to(torch.float32)[..., None] * inv_freq).unsqueeze(1)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


class ModalitiesAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        n_embd, bias = config.hidden_size, config.bias
        self.n_head_q, self.n_head_kv = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = n_embd // self.n_head_q
        self.rope_theta = config.rope_theta if config.position_embedding_type == "rope" else None
        self.q_attn = nn.Linear(n_embd, self.n_head_q * self.head_dim, bias=bias)
        self.k_attn = nn.Linear(n_embd, self.n_head_kv * self.head_dim, bias=bias)
        self.v_attn = nn.Linear(n_embd, self.n_head_kv * self.head_dim, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        qk = config.qk_norm
        self.q_norm = ModalitiesNorm(self.head_dim, qk) if qk else None
        self.k_norm = ModalitiesNorm(self.head_dim, qk) if qk else None

    def forward(self, x, positions, allowed):
        B, T, _ = x.shape
        q = self.q_attn(x).view(B, T, self.n_head_q, self.head_dim).transpose(1, 2)
        k = self.k_attn(x).view(B, T, self.n_head_kv, self.head_dim).transpose(1, 2)
        v = self.v_attn(x).view(B, T, self.n_head_kv, self.head_dim).transpose(1, 2)
        if self.rope_theta is not None:
            cos, sin = rotary_cos_sin(positions, self.head_dim, self.rope_theta, q.dtype)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        group = self.n_head_q // self.n_head_kv
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
        weights = F.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
        y = (weights @ v).transpose(1, 2).reshape(B, T, -1)
        return self.c_proj(y)


class ModalitiesMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        n_embd, hidden, bias = config.hidden_size, config.intermediate_size, config.bias
        self.swiglu = config.hidden_act == "swiglu"
        if self.swiglu:
            self.W = nn.Linear(n_embd, hidden, bias=bias)
            self.V = nn.Linear(n_embd, hidden, bias=bias)
            self.W_2 = nn.Linear(hidden, n_embd, bias=bias)
        else:
            self.c_fc = nn.Linear(n_embd, hidden, bias=bias)
            self.c_proj = nn.Linear(hidden, n_embd, bias=bias)

    def forward(self, x):
        if self.swiglu:
            return self.W_2(F.silu(self.W(x)) * self.V(x))
        return self.c_proj(F.gelu(self.c_fc(x)))


class ModalitiesBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.attention_norm = ModalitiesNorm(config.hidden_size, config.attention_norm)
        self.ffn_norm = ModalitiesNorm(config.hidden_size, config.ffn_norm)
        self.attn = ModalitiesAttention(config)
        self.mlp = ModalitiesMLP(config)

    def forward(self, x, positions, allowed):
        x = x + self.attn(self.attention_norm(x), positions, allowed)
        return x + self.mlp(self.ffn_norm(x))


class ModalitiesGPT2PreTrainedModel(PreTrainedModel):
    config_class = ModalitiesGPT2Config
    config: ModalitiesGPT2Config
    base_model_prefix = "transformer"
    _no_split_modules = ["ModalitiesBlock"]  # noqa: RUF012 (transformers reads these class attributes)

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, ModalitiesNorm):
            if module.weight is not None:
                nn.init.ones_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


class ModalitiesGPT2ForCausalLM(ModalitiesGPT2PreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"transformer.lm_head.weight": "transformer.wte.weight"}  # noqa: RUF012

    def __init__(self, config):
        super().__init__(config)
        modules = {"wte": nn.Embedding(config.vocab_size, config.hidden_size)}
        if config.position_embedding_type == "absolute":
            modules["wpe"] = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        modules["h"] = nn.ModuleDict({str(i): ModalitiesBlock(config) for i in range(config.num_hidden_layers)})
        modules["lm_head_norm"] = ModalitiesNorm(config.hidden_size, config.final_norm)
        modules["lm_head"] = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.transformer = nn.ModuleDict(modules)
        self.post_init()

    def get_input_embeddings(self):
        return self.transformer.wte

    def set_input_embeddings(self, value):
        self.transformer.wte = value

    def get_output_embeddings(self):
        return self.transformer.lm_head

    def set_output_embeddings(self, value):
        self.transformer.lm_head = value

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, **kwargs):
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, labels=None, **kwargs):
        B, T = input_ids.shape
        causal = torch.ones(T, T, dtype=torch.bool, device=input_ids.device).tril()[None, None]
        if attention_mask is not None and not bool(attention_mask.all()):
            # Left padding: padded keys are hidden, and each token still sees itself (no row is all hidden).
            keys = attention_mask.bool()[:, None, None, :]
            allowed = (causal & keys) | torch.eye(T, dtype=torch.bool, device=input_ids.device)
            if position_ids is None:
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        else:
            allowed = causal
        if position_ids is None:
            position_ids = torch.arange(T, device=input_ids.device).expand(B, T)
        layers = self.transformer
        x = layers.wte(input_ids)
        if "wpe" in layers:
            x = x + layers.wpe(position_ids)
        for block in layers.h.values():
            x = block(x, position_ids, allowed)
        logits = layers.lm_head(layers.lm_head_norm(x))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1), ignore_index=-100
            )
        return CausalLMOutputWithPast(loss=loss, logits=logits)
