"""CoCa: Contrastive Captioners (Yu et al. 2022, arXiv 2205.01917).

An image goes through a ViT; learned queries pool its tokens by cross-attention (one query gives the image
embedding for the contrastive loss, the others the context for captioning). The text goes through a causal
decoder with a cls token appended at the end (its output is the text embedding); a multimodal causal decoder
then cross-attends to the pooled image tokens and predicts the next token.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from modalities.models.coca.config import (
    ActivationType,
    AttentionConfig,
    AttentionEngineType,
    TextDecoderConfig,
    VisionTransformerConfig,
    WeightInitConfig,
)
from modalities.models.model import NNModel

# CLIP's initial temperature; the learned scale is capped so the logits cannot blow up.
_INITIAL_LOGIT_SCALE = 1 / 0.07
_MAX_LOGIT_SCALE = 100.0


def _engine(attention_config: AttentionConfig | None) -> AttentionEngineType:
    return AttentionEngineType.DEFAULT_ATTENTION if attention_config is None else attention_config.attention_engine_type


class MultiHeadAttention(nn.Module):
    """Self-attention (causal or not), or cross-attention from ``x`` to ``context``."""

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        bias: bool,
        dropout: float,
        engine: AttentionEngineType,
        is_causal: bool,
    ):
        super().__init__()
        if n_embd % n_head != 0:
            raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        self.n_head = n_head
        self.is_causal = is_causal
        self.engine = engine
        self.dropout = dropout
        self.wq = nn.Linear(n_embd, n_embd, bias=bias)
        self.wk = nn.Linear(n_embd, n_embd, bias=bias)
        self.wv = nn.Linear(n_embd, n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        return x.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        kv_source = x if context is None else context
        q, k, v = self._heads(self.wq(x)), self._heads(self.wk(kv_source)), self._heads(self.wv(kv_source))
        dropout_p = self.dropout if self.training else 0.0
        if self.engine == AttentionEngineType.PYTORCH_FLASH_ATTENTION:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=self.is_causal)
        else:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
            if self.is_causal:
                t_q, t_k = scores.shape[-2:]
                mask = torch.ones(t_q, t_k, dtype=torch.bool, device=x.device).tril()
                scores = scores.masked_fill(~mask, float("-inf"))
            weights = F.dropout(scores.softmax(dim=-1), p=dropout_p)
            y = weights @ v
        b, t, c = x.shape
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(b, t, c)))


class MLP(nn.Module):
    def __init__(self, n_embd: int, ffn_hidden: int, bias: bool, dropout: float, activation: ActivationType):
        super().__init__()
        self.swiglu = activation in (ActivationType.SWIGLU, ActivationType.FUSED_SWIGLU)
        self.c_fc = nn.Linear(n_embd, ffn_hidden, bias=bias)
        if self.swiglu:
            self.c_gate = nn.Linear(n_embd, ffn_hidden, bias=bias)
        self.c_proj = nn.Linear(ffn_hidden, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = F.silu(self.c_gate(x)) * self.c_fc(x) if self.swiglu else F.gelu(self.c_fc(x))
        return self.dropout(self.c_proj(hidden))


class TransformerBlock(nn.Module):
    """Pre-norm block: self-attention, optional cross-attention to a context, MLP."""

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        ffn_hidden: int,
        bias: bool,
        dropout: float,
        epsilon: float,
        activation: ActivationType,
        engine: AttentionEngineType,
        is_causal: bool,
        with_cross_attention: bool = False,
    ):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, eps=epsilon, bias=bias)
        self.attn = MultiHeadAttention(n_embd, n_head, bias, dropout, engine, is_causal=is_causal)
        self.cross_attn = None
        if with_cross_attention:
            self.ln_cross = nn.LayerNorm(n_embd, eps=epsilon, bias=bias)
            self.cross_attn = MultiHeadAttention(n_embd, n_head, bias, dropout, engine, is_causal=False)
        self.ln_2 = nn.LayerNorm(n_embd, eps=epsilon, bias=bias)
        self.mlp = MLP(n_embd, ffn_hidden, bias, dropout, activation)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        if self.cross_attn is not None:
            x = x + self.cross_attn(self.ln_cross(x), context=context)
        return x + self.mlp(self.ln_2(x))


class VisionTransformerBlock(TransformerBlock):
    """A non-causal block of the image encoder; its own class so FSDP wrapping can name it (as Modalities does)."""


class VisionTransformer(NNModel):
    """ViT encoder; without a classification head it returns every token's embedding (batch, tokens, n_embd)."""

    def __init__(
        self,
        sample_key: str,
        prediction_key: str,
        img_size: int | tuple[int, int] = 224,
        n_classes: int | None = 1000,
        n_layer: int = 12,
        attention_config: AttentionConfig | None = None,
        n_head: int = 8,
        n_embd: int = 768,
        ffn_hidden: int | None = None,
        dropout: float = 0.0,
        patch_size: int = 16,
        patch_stride: int = 16,
        n_img_channels: int = 3,
        add_cls_token: bool = True,
        bias: bool = True,
    ):
        super().__init__()
        self.sample_key = sample_key
        self.prediction_key = prediction_key
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.n_img_channels = n_img_channels
        grid = [(side - patch_size) // patch_stride + 1 for side in self.img_size]
        self.n_tokens = grid[0] * grid[1] + int(add_cls_token)

        self.patch_embd = nn.Conv2d(n_img_channels, n_embd, kernel_size=patch_size, stride=patch_stride)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, n_embd)) if add_cls_token else None
        self.pos_embd = nn.Parameter(torch.zeros(1, self.n_tokens, n_embd))
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            VisionTransformerBlock(
                n_embd,
                n_head,
                ffn_hidden or 4 * n_embd,
                bias,
                dropout,
                epsilon=1e-5,
                activation=ActivationType.GELU,
                engine=_engine(attention_config),
                is_causal=False,
            )
            for _ in range(n_layer)
        )
        self.ln_f = nn.LayerNorm(n_embd, bias=bias)
        self.head = nn.Linear(n_embd, n_classes, bias=bias) if n_classes is not None else None

    def forward_tokens(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or tuple(images.shape[1:]) != (self.n_img_channels, *self.img_size):
            raise ValueError(
                f"'{self.sample_key}' must be shaped (batch, {self.n_img_channels}, {self.img_size[0]}, "
                f"{self.img_size[1]}) as configured (n_img_channels, img_size); got {tuple(images.shape)}"
            )
        x = self.patch_embd(images).flatten(2).transpose(1, 2)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.drop(x + self.pos_embd)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = self.forward_tokens(inputs[self.sample_key])
        if self.head is not None:
            x = self.head(x[:, 0] if self.cls_token is not None else x.mean(dim=1))
        return {self.prediction_key: x}


class AttentionPooling(nn.Module):
    """Learned queries cross-attend to the (normalized) image tokens."""

    def __init__(self, n_embd: int, n_head: int, bias: bool, epsilon: float, engine: AttentionEngineType):
        super().__init__()
        self.ln_context = nn.LayerNorm(n_embd, eps=epsilon, bias=bias)
        self.attn = MultiHeadAttention(n_embd, n_head, bias=bias, dropout=0.0, engine=engine, is_causal=False)
        self.ln_out = nn.LayerNorm(n_embd, eps=epsilon, bias=bias)

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.ln_out(self.attn(queries, context=self.ln_context(context)))


class TextDecoder(nn.Module):
    """Unimodal causal decoder: token + position embeddings, a cls token appended after the last token."""

    def __init__(self, cfg: TextDecoderConfig):
        super().__init__()
        self.block_size = cfg.block_size
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size + 1, cfg.n_embd)  # +1: the cls position
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.n_embd))
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            _text_block(cfg, with_cross_attention=False) for _ in range(cfg.n_layer_text)
        )
        self.ln_cls = nn.LayerNorm(cfg.n_embd, eps=cfg.epsilon, bias=cfg.bias)

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the token embeddings (batch, t, n_embd) and the text embedding (batch, n_embd)."""
        b, t = input_ids.shape
        if t > self.block_size:
            raise ValueError(f"text of {t} tokens is longer than text_decoder_config.block_size ({self.block_size})")
        x = torch.cat([self.wte(input_ids), self.cls_token.expand(b, -1, -1)], dim=1)
        x = self.drop(x + self.wpe(torch.arange(t + 1, device=input_ids.device)))
        for block in self.blocks:
            x = block(x)
        return x[:, :-1], self.ln_cls(x[:, -1])


class MultimodalDecoder(nn.Module):
    """Causal decoder over the text tokens that cross-attends to the pooled image tokens; ends in the LM head."""

    def __init__(self, cfg: TextDecoderConfig):
        super().__init__()
        self.blocks = nn.ModuleList(
            _text_block(cfg, with_cross_attention=True) for _ in range(cfg.n_layer_multimodal_text)
        )
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.epsilon, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)

    def forward(self, text_tokens: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        x = text_tokens
        for block in self.blocks:
            x = block(x, context=image_tokens)
        return self.lm_head(self.ln_f(x))


def _text_block(cfg: TextDecoderConfig, with_cross_attention: bool) -> TransformerBlock:
    return TransformerBlock(
        cfg.n_embd,
        cfg.n_head,
        cfg.ffn_hidden,
        cfg.bias,
        cfg.dropout,
        cfg.epsilon,
        cfg.activation,
        _engine(cfg.attention_config),
        is_causal=True,
        with_cross_attention=with_cross_attention,
    )


class CoCa(NNModel):
    """Contrastive Captioner.

    Forward maps {image key, text key} to: captioning logits (batch, t, vocab); the image and text embeddings
    for the contrastive loss (batch, text n_embd); the ViT's tokens and the unimodal decoder's text tokens under
    the vision/text embd keys; and, if configured, the learned logit scale.
    """

    def __init__(
        self,
        vision_embd_prediction_key: str,
        text_embd_prediction_key: str,
        vision_cls_prediction_key: str,
        text_cls_prediction_key: str,
        vision_encoder_config: VisionTransformerConfig,
        text_decoder_config: TextDecoderConfig,
        n_pool_head: int,
        n_vision_queries: int,
        bias_attn_pool: bool,
        epsilon_attn_pool: float,
        prediction_key: str = "logits",
        logit_scale_prediction_key: str | None = None,
        weight_init: WeightInitConfig | None = None,
        seed: int | None = None,
    ):
        super().__init__(
            seed=seed,
            weight_decay_groups={
                "linear": [r"\.(attn|cross_attn|mlp)\.", r"lm_head", r"patch_embd", r"vision_proj"],
                "embedding": [r"wte", r"wpe", r"pos_embd", r"cls_token", r"vision_queries", r"logit_scale"],
                "layernorm": [r"\.ln_[a-z0-9_]+\."],
            },
        )
        self.prediction_key = prediction_key
        self.vision_embd_prediction_key = vision_embd_prediction_key
        self.text_embd_prediction_key = text_embd_prediction_key
        self.vision_cls_prediction_key = vision_cls_prediction_key
        self.text_cls_prediction_key = text_cls_prediction_key
        self.logit_scale_prediction_key = logit_scale_prediction_key
        self.text_sample_key = text_decoder_config.sample_key

        vision_dim, text_dim = vision_encoder_config.n_embd, text_decoder_config.n_embd
        self.vision_encoder = VisionTransformer(
            **{name: getattr(vision_encoder_config, name) for name in type(vision_encoder_config).model_fields}
        )
        # One query more than n_vision_queries: its pooled output is the image embedding.
        self.vision_queries = nn.Parameter(torch.zeros(n_vision_queries + 1, vision_dim))
        self.attn_pool = AttentionPooling(
            vision_dim, n_pool_head, bias_attn_pool, epsilon_attn_pool, _engine(text_decoder_config.attention_config)
        )
        self.vision_proj = nn.Linear(vision_dim, text_dim, bias=False) if vision_dim != text_dim else nn.Identity()
        self.text_decoder = TextDecoder(text_decoder_config)
        self.multimodal_decoder = MultimodalDecoder(text_decoder_config)
        self.logit_scale = (
            nn.Parameter(torch.tensor(math.log(_INITIAL_LOGIT_SCALE))) if logit_scale_prediction_key else None
        )
        self._init_weights(
            weight_init or WeightInitConfig(),
            n_text_layers=text_decoder_config.n_layer_text + text_decoder_config.n_layer_multimodal_text,
            n_vision_layers=vision_encoder_config.n_layer,
        )
        # Weight tying (as in Modalities' CoCa): the LM head reads out in the input embedding space.
        self.multimodal_decoder.lm_head.weight = self.text_decoder.wte.weight

    def _init_weights(self, init: WeightInitConfig, n_text_layers: int, n_vision_layers: int) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=init.mean, std=init.std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        for tensor in (self.vision_queries, self.vision_encoder.pos_embd, self.text_decoder.cls_token):
            nn.init.normal_(tensor, mean=init.mean, std=init.std)
        # GPT-2's scaled init: each residual branch's output projection shrinks with the depth of its stack.
        for name, param in self.named_parameters():
            if name.endswith("c_proj.weight"):
                depth = n_vision_layers if name.startswith("vision_encoder.") else n_text_layers
                nn.init.normal_(param, mean=init.mean, std=init.std / math.sqrt(2 * depth))

    def encode_image(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The ViT's tokens, the pooled tokens for captioning (batch, n_vision_queries, text n_embd) and the
        image embedding (batch, text n_embd)."""
        tokens = self.vision_encoder({self.vision_encoder.sample_key: images})[self.vision_embd_prediction_key]
        pooled = self.vision_proj(self.attn_pool(self.vision_queries.expand(tokens.shape[0], -1, -1), tokens))
        return tokens, pooled[:, :-1], pooled[:, -1]

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        for key in (self.vision_encoder.sample_key, self.text_sample_key):
            if key not in inputs:
                raise KeyError(f"CoCa needs input '{key}'; the batch has {sorted(inputs)}")
        vit_tokens, image_tokens, image_embedding = self.encode_image(inputs[self.vision_encoder.sample_key])
        text_tokens, text_embedding = self.text_decoder(inputs[self.text_sample_key])
        outputs = {
            self.prediction_key: self.multimodal_decoder(text_tokens, image_tokens),
            self.vision_embd_prediction_key: vit_tokens,
            self.text_embd_prediction_key: text_tokens,
            self.vision_cls_prediction_key: image_embedding,
            self.text_cls_prediction_key: text_embedding,
        }
        if self.logit_scale is not None:
            outputs[self.logit_scale_prediction_key] = self.logit_scale.exp().clamp(max=_MAX_LOGIT_SCALE)
        return outputs
