"""CoCa: Contrastive Captioners (Yu et al. 2022, arXiv 2205.01917), built as the reference builds it.

An image goes through a ViT; learned queries pool its tokens by cross-attention (the last query's output is
the image embedding for the contrastive loss, the others the context for captioning). The text goes through a
causal decoder with a cls token appended after the last token (its output is the text embedding); a multimodal
decoder (causal self-attention, cross-attention to the pooled image tokens, MLP) predicts the next token.

Same YAML, same model as the reference: module names, block layouts (text blocks ln_1/attn/ln_2/mlp,
multimodal blocks ln_1/attn/ln_3/cross_attn/ln_4/mlp_2), widths (a ViT MLP of 3072 unless ffn_hidden is given,
SwiGLU hidden 2/3 of ffn_hidden rounded up to 256), where dropout applies (embeddings and MLPs, not attention),
the tied head, and the creation order, so a seed draws the same weights and the parameter count is the same.
Additions: ``vision_proj`` when image and text widths differ (the reference needs them equal), a learned
``logit_scale``, an optional ``weight_init``. The text cls token starts at zero (the reference leaves it
uninitialized memory).
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
from modalities.models.gpt2.model import SwiGLU
from modalities.models.model import NNModel

# CLIP's initial temperature; the learned scale is capped so the logits cannot blow up.
_INITIAL_LOGIT_SCALE = 1 / 0.07
_MAX_LOGIT_SCALE = 100.0
# The reference's VisionTransformer always builds MLPs of this width (its config has no ffn_hidden).
VIT_DEFAULT_FFN_HIDDEN = 3072


def _engine(attention_config: AttentionConfig | None) -> AttentionEngineType:
    return AttentionEngineType.DEFAULT_ATTENTION if attention_config is None else attention_config.attention_engine_type


class MultiHeadAttention(nn.Module):
    """Self-attention (causal or not) of ``x``, or cross-attention from ``x`` to ``context``. As in the reference,
    it applies no dropout (its dropout was never configured)."""

    def __init__(self, n_embd: int, n_head: int, engine: AttentionEngineType, is_causal: bool, cross: bool = False,
                 bias: bool = True):
        super().__init__()
        if n_embd % n_head != 0:
            raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        self.n_head, self.is_causal, self.cross, self.engine = n_head, is_causal, cross, engine
        self.wq = nn.Linear(n_embd, n_embd, bias=bias)
        self.wk = nn.Linear(n_embd, n_embd, bias=bias)
        self.wv = nn.Linear(n_embd, n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        return x.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        source = context if self.cross else x
        q, k, v = self._heads(self.wq(x)), self._heads(self.wk(source)), self._heads(self.wv(source))
        if self.engine == AttentionEngineType.PYTORCH_FLASH_ATTENTION:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=self.is_causal)
        else:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
            if self.is_causal:
                t_q, t_k = scores.shape[-2:]
                mask = torch.ones(t_q, t_k, dtype=torch.bool, device=x.device).tril()
                scores = scores.masked_fill(~mask, float("-inf"))
            y = scores.softmax(dim=-1) @ v
        b, t, c = x.shape
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    """fc1 -> GELU -> dropout -> fc2 -> dropout."""

    def __init__(self, in_features: int, hidden_features: int, bias: bool, dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_features, in_features, bias=bias)
        self.drop2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


def _mlp(n_embd: int, ffn_hidden: int, bias: bool, dropout: float, activation: ActivationType) -> nn.Module:
    if activation in (ActivationType.SWIGLU, ActivationType.FUSED_SWIGLU):
        return SwiGLU(n_embd, ffn_hidden, bias, multiple_of=256)
    return MLP(n_embd, ffn_hidden, bias, dropout)


class TransformerBlock(nn.Module):
    """A text block: causal self-attention and an MLP; with a context (the multimodal decoder) the MLP comes
    after a cross-attention instead (ln_3/cross_attn/ln_4/mlp_2)."""

    def __init__(self, cfg: TextDecoderConfig, with_context: bool):
        super().__init__()
        engine = _engine(cfg.attention_config)
        self.with_context = with_context
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias, eps=cfg.epsilon)
        self.attn = MultiHeadAttention(cfg.n_embd, cfg.n_head, engine, is_causal=True, bias=cfg.bias)
        if not with_context:
            self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias, eps=cfg.epsilon)
            self.mlp = _mlp(cfg.n_embd, cfg.ffn_hidden, cfg.bias, cfg.dropout, cfg.activation)
        else:
            self.ln_3 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias, eps=cfg.epsilon)
            self.cross_attn = MultiHeadAttention(cfg.n_embd, cfg.n_head, engine, is_causal=False, cross=True, bias=cfg.bias)
            self.ln_4 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias, eps=cfg.epsilon)
            self.mlp_2 = _mlp(cfg.n_embd, cfg.ffn_hidden, cfg.bias, cfg.dropout, cfg.activation)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        if not self.with_context:
            return x + self.mlp(self.ln_2(x))
        x = x + self.cross_attn(self.ln_3(x), context=context)
        return x + self.mlp_2(self.ln_4(x))


class ImagePatchEmbedding(nn.Module):
    def __init__(self, n_img_channels: int, n_embd: int, patch_size: int, patch_stride: int, add_cls_token: bool):
        super().__init__()
        self.conv = nn.Conv2d(n_img_channels, n_embd, kernel_size=patch_size, stride=patch_stride)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, n_embd)) if add_cls_token else None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.conv(images).flatten(2).transpose(1, 2)  # (b, patches, n_embd)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return x


class VisionTransformerBlock(nn.Module):
    """A non-causal ViT block (its norms always have biases and eps 1e-5, as in the reference)."""

    def __init__(self, n_embd: int, n_head: int, ffn_hidden: int, bias: bool, dropout: float, engine):
        super().__init__()
        self.norm1 = nn.LayerNorm(n_embd)
        self.attention = MultiHeadAttention(n_embd, n_head, engine, is_causal=False)
        self.norm2 = nn.LayerNorm(n_embd)
        self.mlp = MLP(n_embd, ffn_hidden, bias, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(NNModel):
    """ViT; without a classification head it returns every token's embedding (batch, tokens, n_embd)."""

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
        self.sample_key, self.prediction_key = sample_key, prediction_key
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.n_img_channels = n_img_channels
        grid = [(side - patch_size) // patch_stride + 1 for side in self.img_size]
        self.n_tokens = grid[0] * grid[1] + int(add_cls_token)
        self.embedding_fn = ImagePatchEmbedding(n_img_channels, n_embd, patch_size, patch_stride, add_cls_token)
        self.positional_embedding_fn = nn.Embedding(self.n_tokens, n_embd)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            VisionTransformerBlock(n_embd, n_head, ffn_hidden or VIT_DEFAULT_FFN_HIDDEN, bias, dropout, _engine(attention_config))
            for _ in range(n_layer)
        )
        self.head = None
        if n_classes is not None:
            self.norm = nn.LayerNorm(n_embd)
            self.head = nn.Linear(n_embd, n_classes, bias=bias)

    def forward_tokens(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or tuple(images.shape[1:]) != (self.n_img_channels, *self.img_size):
            raise ValueError(
                f"'{self.sample_key}' must be shaped (batch, {self.n_img_channels}, {self.img_size[0]}, "
                f"{self.img_size[1]}) as configured (n_img_channels, img_size); got {tuple(images.shape)}"
            )
        x = self.dropout(self.embedding_fn(images) + self.positional_embedding_fn.weight)
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = self.forward_tokens(inputs[self.sample_key])
        if self.head is not None:
            x = self.head(self.norm(x[:, 0] if self.embedding_fn.cls_token is not None else x.mean(dim=1)))
        return {self.prediction_key: x}


class AttentionPooling(nn.Module):
    """Learned queries cross-attend to the normalized image tokens."""

    def __init__(self, n_embd: int, n_head: int, bias: bool, epsilon: float, engine: AttentionEngineType):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=bias, eps=epsilon)
        self.attn = MultiHeadAttention(n_embd, n_head, engine, is_causal=False, cross=True)
        self.ln_2 = nn.LayerNorm(n_embd, bias=bias, eps=epsilon)

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.ln_2(self.attn(queries, context=self.ln_1(context)))


class TextDecoder(nn.Module):
    """Unimodal causal decoder: token + position embeddings, a cls token appended after the last token."""

    def __init__(self, cfg: TextDecoderConfig):
        super().__init__()
        self.block_size = cfg.block_size  # text tokens; one more position for the cls token
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.n_embd))
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(cfg.vocab_size, cfg.n_embd),
                wpe=nn.Embedding(cfg.block_size + 1, cfg.n_embd),
                drop=nn.Dropout(cfg.dropout),
                h=nn.ModuleList(TransformerBlock(cfg, with_context=False) for _ in range(cfg.n_layer_text)),
            )
        )

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The hidden states of the text tokens and the cls token, (batch, t + 1, n_embd)."""
        b, t = input_ids.shape
        if t > self.block_size:
            raise ValueError(f"text of {t} tokens is longer than text_decoder_config.block_size ({self.block_size})")
        layers = self.transformer
        x = torch.cat([layers.wte(input_ids), self.cls_token.expand(b, -1, -1)], dim=1)
        x = layers.drop(x + layers.wpe(torch.arange(t + 1, device=input_ids.device)))
        for block in layers.h:
            x = block(x)
        return x


class MultiModalTextDecoder(nn.Module):
    """Causal decoder over the text tokens that cross-attends to the pooled image tokens; ends in the LM head."""

    def __init__(self, cfg: TextDecoderConfig):
        super().__init__()
        self.transformer = nn.ModuleDict(
            dict(
                h=nn.ModuleList(TransformerBlock(cfg, with_context=True) for _ in range(cfg.n_layer_multimodal_text)),
                ln_f=nn.LayerNorm(cfg.n_embd, bias=cfg.bias, eps=cfg.epsilon),
            )
        )
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)

    def forward(self, text_tokens: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        x = text_tokens
        for block in self.transformer.h:
            x = block(x, context=image_tokens)
        return self.lm_head(self.transformer.ln_f(x))


class CoCa(NNModel):
    """Contrastive Captioner.

    Forward maps {image key, text key} to the captioning logits (batch, t, vocab) under ``prediction_key`` and
    the image and text embeddings for the contrastive loss, each (batch, 1, n_embd) as in the reference; also
    the ViT's tokens and the unimodal decoder's text states under the vision/text embd keys, and, if
    configured, the learned logit scale.
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
                "linear": [r"\.(attn|cross_attn|attention)\.", r"\.(mlp|mlp_2)\.", r"lm_head", r"embedding_fn\.conv",
                           r"vision_proj", r"(^|\.)head\."],
                "embedding": [r"wte", r"wpe", r"positional_embedding_fn", r"cls_token", r"vision_queries", r"logit_scale"],
                "layernorm": [r"\.ln_[a-z0-9_]+\.", r"\.norm[0-9]*\."],
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
        # The reference's creation order: encoder, decoders, tied head, queries, pooling.
        self.vision_encoder = VisionTransformer(
            **{name: getattr(vision_encoder_config, name) for name in type(vision_encoder_config).model_fields}
        )
        self.text_decoder = TextDecoder(text_decoder_config)
        self.multimodal_decoder = MultiModalTextDecoder(text_decoder_config)
        self.text_decoder.transformer.wte.weight = self.multimodal_decoder.lm_head.weight
        self.vision_queries = nn.Parameter(torch.randn(n_vision_queries + 1, vision_dim))
        self.attn_pool = AttentionPooling(
            vision_dim, n_pool_head, bias_attn_pool, epsilon_attn_pool, _engine(text_decoder_config.attention_config)
        )
        self.vision_proj = nn.Linear(vision_dim, text_dim, bias=False) if vision_dim != text_dim else nn.Identity()
        self.logit_scale = (
            nn.Parameter(torch.tensor(math.log(_INITIAL_LOGIT_SCALE))) if logit_scale_prediction_key else None
        )
        if weight_init is not None:
            self._init_weights(
                weight_init,
                n_text_layers=text_decoder_config.n_layer_text + text_decoder_config.n_layer_multimodal_text,
                n_vision_layers=vision_encoder_config.n_layer,
            )

    @property
    def wte(self) -> nn.Embedding:
        return self.text_decoder.transformer.wte

    @torch.no_grad()
    def _init_weights(self, init: WeightInitConfig, n_text_layers: int, n_vision_layers: int) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding, nn.Conv2d)):
                nn.init.normal_(module.weight, mean=init.mean, std=init.std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        nn.init.normal_(self.vision_queries, mean=init.mean, std=init.std)
        # GPT-2's scaled init: each residual branch's output projection shrinks with the depth of its stack.
        for name, param in self.named_parameters():
            if name.endswith(("c_proj.weight", "fc2.weight", "W_2.weight")):
                depth = n_vision_layers if name.startswith("vision_encoder.") else n_text_layers
                nn.init.normal_(param, mean=init.mean, std=init.std / math.sqrt(2 * depth))

    def encode_image(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The ViT's tokens, the pooled tokens for captioning (batch, n_vision_queries, text n_embd) and the image
        embedding (batch, 1, text n_embd)."""
        tokens = self.vision_encoder({self.vision_encoder.sample_key: images})[self.vision_embd_prediction_key]
        pooled = self.vision_proj(self.attn_pool(self.vision_queries.expand(tokens.shape[0], -1, -1), tokens))
        return tokens, pooled[:, :-1], pooled[:, -1:]

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        for key in (self.vision_encoder.sample_key, self.text_sample_key):
            if key not in inputs:
                raise KeyError(f"CoCa needs input '{key}'; the batch has {sorted(inputs)}")
        vit_tokens, image_tokens, image_embedding = self.encode_image(inputs[self.vision_encoder.sample_key])
        text_states = self.text_decoder(inputs[self.text_sample_key])
        text_tokens, text_embedding = text_states[:, :-1], text_states[:, -1:]
        outputs = {
            self.prediction_key: self.multimodal_decoder(text_tokens, image_tokens),
            self.vision_cls_prediction_key: image_embedding,
            self.text_cls_prediction_key: text_embedding,
            self.vision_embd_prediction_key: vit_tokens,
            self.text_embd_prediction_key: text_tokens,
        }
        if self.logit_scale is not None:
            outputs[self.logit_scale_prediction_key] = self.logit_scale.exp().clamp(max=_MAX_LOGIT_SCALE)
        return outputs
