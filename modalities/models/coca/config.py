"""Configs of CoCa (Contrastive Captioners), its collator and its loss (torch-free).

Field names follow Modalities' CoCaConfig, VisionTransformerConfig, TextDecoderConfig and CoCaCollateFnConfig,
so its CoCa configs load unchanged.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

from pydantic import Field, model_validator

from modalities.registry.types import ComponentConfig, PositiveStrictInt

NonNegativeFloat = Annotated[float, Field(ge=0.0)]


class AttentionEngineType(str, Enum):
    DEFAULT_ATTENTION = "default_attention"
    PYTORCH_FLASH_ATTENTION = "pytorch_flash_attention"


class ActivationType(str, Enum):
    GELU = "gelu"
    SWIGLU = "swiglu"
    # Modalities' older configs name xformers' fused kernel; it computes the same SwiGLU function.
    FUSED_SWIGLU = "fused_swiglu"


class AttentionConfig(ComponentConfig):
    """How attention scores are computed."""

    attention_engine_type: AttentionEngineType = Field(
        default=AttentionEngineType.DEFAULT_ATTENTION,
        description="`default_attention`: explicit softmax(QK^T/sqrt(d))V; `pytorch_flash_attention`: "
        "torch.nn.functional.scaled_dot_product_attention (fused kernels where the device has them).",
    )


class VisionTransformerConfig(ComponentConfig):
    """A ViT image encoder: patch embedding, optional cls token, learned positions, pre-norm transformer blocks."""

    sample_key: str = Field(description="Input key holding images shaped (batch, channels, height, width).")
    prediction_key: str = Field(description="Output key of the encoder's token embeddings (or class logits).")
    img_size: int | tuple[int, int] = Field(default=224, description="Image side length, or (height, width).")
    n_classes: PositiveStrictInt | None = Field(
        default=1000,
        description="Classes of the classification head; null disables the head and the encoder returns every "
        "token's embedding (what CoCa needs).",
    )
    n_layer: PositiveStrictInt = Field(default=12, description="Transformer blocks.")
    attention_config: AttentionConfig | None = Field(
        default=None, description="Attention implementation; null means `default_attention`."
    )
    n_head: PositiveStrictInt = Field(default=8, description="Attention heads; must divide n_embd.")
    n_embd: PositiveStrictInt = Field(default=768, description="Token embedding width.")
    ffn_hidden: PositiveStrictInt | None = Field(
        default=None,
        description="Hidden width of each block's MLP; null means 3072, the width the reference always uses.",
    )
    dropout: NonNegativeFloat = Field(default=0.0, description="Dropout on embeddings, attention output and MLP.")
    patch_size: PositiveStrictInt = Field(default=16, description="Side length of the square patches.")
    patch_stride: PositiveStrictInt = Field(
        default=16, description="Stride between patches (equal to patch_size: no overlap).",
    )
    n_img_channels: PositiveStrictInt = Field(default=3, description="Image channels.")
    add_cls_token: bool = Field(default=True, description="Prepend a learned cls token to the patch tokens.")
    bias: bool = Field(default=True, description="Biases in the MLPs and the classification head.")

    @model_validator(mode="after")
    def _check_shapes(self) -> "VisionTransformerConfig":
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        height, width = (self.img_size, self.img_size) if isinstance(self.img_size, int) else self.img_size
        if min(height, width) < self.patch_size:
            raise ValueError(f"img_size {self.img_size} is smaller than patch_size {self.patch_size}")
        return self


class TextDecoderConfig(ComponentConfig):
    """The text side of CoCa: a unimodal causal decoder followed by a multimodal decoder (shared widths)."""

    sample_key: str = Field(description="Input key holding token ids shaped (batch, sequence).")
    prediction_key: str = Field(
        description="Key of the multimodal decoder's own output (internal); CoCa returns the logits under its "
        "prediction_key."
    )
    block_size: PositiveStrictInt = Field(description="Longest token sequence the decoders accept.")
    vocab_size: PositiveStrictInt = Field(description="Vocabulary size of the embedding and the LM head.")
    n_layer_text: PositiveStrictInt = Field(description="Blocks of the unimodal (text-only, causal) decoder.")
    n_layer_multimodal_text: PositiveStrictInt = Field(
        description="Blocks of the multimodal decoder (causal self-attention + cross-attention to image tokens)."
    )
    n_head: PositiveStrictInt = Field(description="Attention heads; must divide n_embd.")
    n_embd: PositiveStrictInt = Field(description="Token embedding width.")
    ffn_hidden: PositiveStrictInt = Field(description="Hidden width of each block's MLP.")
    dropout: NonNegativeFloat = Field(description="Dropout on embeddings, attention output and MLP.")
    bias: bool = Field(description="Biases in linear layers and layer norms.")
    attention_config: AttentionConfig | None = Field(
        default=None, description="Attention implementation; null means `default_attention`."
    )
    activation: ActivationType = Field(description="MLP activation: gelu, swiglu (fused_swiglu is the same function).")
    epsilon: NonNegativeFloat = Field(description="Epsilon of the layer norms.")

    @model_validator(mode="after")
    def _check_heads(self) -> "TextDecoderConfig":
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        return self


class WeightInitConfig(ComponentConfig):
    """Normal initialization of linear and embedding weights."""

    mean: float = Field(default=0.0, description="Mean of the normal distribution.")
    std: Annotated[float, Field(gt=0.0)] = Field(
        default=0.02, description="Standard deviation; residual output projections use std / sqrt(2 * n_layers)."
    )


class CoCaConfig(ComponentConfig):
    """CoCa (arXiv 2205.01917): ViT encoder, attentional pooling, unimodal and multimodal text decoders."""

    prediction_key: str = Field(default="logits", description="Output key of the captioning logits.")
    vision_embd_prediction_key: str = Field(
        description="Key of the vision encoder's token embeddings (must equal vision_encoder_config.prediction_key); "
        "the model also returns them under this key."
    )
    text_embd_prediction_key: str = Field(
        description="Output key of the unimodal text decoder's token embeddings (batch, t, n_embd), the input of "
        "the multimodal decoder."
    )
    vision_cls_prediction_key: str = Field(
        description="Output key of the image embedding for the contrastive loss, shaped (batch, 1, text n_embd)."
    )
    text_cls_prediction_key: str = Field(
        description="Output key of the text embedding for the contrastive loss, shaped (batch, 1, text n_embd)."
    )
    logit_scale_prediction_key: str | None = Field(
        default=None,
        description="If set, the model learns the contrastive logit scale (log-parametrized, initialized to "
        "1/0.07 as in CLIP) and returns it under this key, for `loss/coca_loss`'s logit_scale_key.",
    )
    vision_encoder_config: VisionTransformerConfig = Field(description="The image encoder.")
    text_decoder_config: TextDecoderConfig = Field(description="The unimodal and multimodal text decoders.")
    n_pool_head: PositiveStrictInt = Field(description="Attention heads of the attentional pooling.")
    n_vision_queries: PositiveStrictInt = Field(
        description="Learned queries whose pooled outputs the multimodal decoder cross-attends to; one more query "
        "yields the image embedding for the contrastive loss."
    )
    bias_attn_pool: bool = Field(description="Biases in the attentional pooling's layer norms.")
    epsilon_attn_pool: NonNegativeFloat = Field(description="Epsilon of the attentional pooling's layer norms.")
    weight_init: WeightInitConfig | None = Field(
        default=None,
        description="Initialize the weights with normals at build time; null keeps torch's defaults (as the "
        "reference does; model_initialized with model_type coca initializes them later).",
    )
    seed: int | None = Field(default=None, description="Seed torch's generator before the weights are created.")

    @model_validator(mode="after")
    def _check(self) -> "CoCaConfig":
        if self.vision_encoder_config.n_embd % self.n_pool_head != 0:
            raise ValueError(
                f"vision_encoder_config.n_embd ({self.vision_encoder_config.n_embd}) must be divisible by "
                f"n_pool_head ({self.n_pool_head})"
            )
        if self.vision_encoder_config.n_classes is not None:
            raise ValueError(
                "vision_encoder_config.n_classes must be null for CoCa: the pooling needs every image token, "
                "not class logits"
            )
        if self.vision_encoder_config.prediction_key != self.vision_embd_prediction_key:
            raise ValueError(
                f"vision_embd_prediction_key ('{self.vision_embd_prediction_key}') must equal "
                f"vision_encoder_config.prediction_key ('{self.vision_encoder_config.prediction_key}')"
            )
        return self


class CoCaCollateFnConfig(ComponentConfig):
    """Stacks samples into a batch; the text is shifted into model input and next-token target."""

    sample_keys: list[str] = Field(description="Keys of each sample stacked into the batch's samples (images, text).")
    target_keys: list[str] = Field(description="Further keys stacked into the batch's targets (often empty).")
    text_sample_key: str = Field(description="The sample key holding token ids; it becomes tokens[:, :-1].")
    text_target_key: str = Field(description="The target key created from the text: tokens[:, 1:].")

    @model_validator(mode="after")
    def _check_keys(self) -> "CoCaCollateFnConfig":
        if self.text_sample_key not in self.sample_keys:
            raise ValueError(f"text_sample_key '{self.text_sample_key}' must be one of sample_keys {self.sample_keys}")
        if self.text_target_key in self.target_keys:
            raise ValueError(
                f"text_target_key '{self.text_target_key}' must not be in target_keys {self.target_keys}: "
                "the collator creates it from the text sample"
            )
        return self


class CoCaLossConfig(ComponentConfig):
    """CoCa's objective: weighted symmetric contrastive (InfoNCE) loss plus captioning cross-entropy."""

    prediction_key: str = Field(default="logits", description="Prediction key of the captioning logits.")
    target_key: str = Field(description="Target key of the next-token ids (the collator's text_target_key).")
    vision_cls_prediction_key: str = Field(description="Prediction key of the image embeddings.")
    text_cls_prediction_key: str = Field(description="Prediction key of the text embeddings.")
    logit_scale_key: str | None = Field(
        default=None,
        description="Prediction key of a learned logit scale (the model's logit_scale_prediction_key); "
        "if null, logits are divided by `temperature`.",
    )
    temperature: Annotated[float, Field(gt=0.0)] = Field(
        default=0.07, description="Softmax temperature of the contrastive loss when no learned scale is used."
    )
    contrastive_loss_weight: NonNegativeFloat = Field(default=1.0, description="Weight of the contrastive loss.")
    captioning_loss_weight: NonNegativeFloat = Field(
        default=2.0, description="Weight of the captioning loss (the CoCa paper uses 2 with contrastive weight 1)."
    )
    ignore_index: int = Field(default=-100, description="Target id that the captioning loss skips (padding).")
    tag: str = Field(default="CoCaLoss", description="Name under which the loss is reported.")


class NCELossConfig(ComponentConfig):
    """Modalities' NCELoss: InfoNCE between two embeddings with a fixed temperature."""

    prediction_key1: str = Field(description="Prediction key of the first modality's embeddings (batch, dim).")
    prediction_key2: str = Field(description="Prediction key of the second modality's embeddings (batch, dim).")
    is_asymmetric: bool = Field(
        default=True, description="Only first-to-second direction if true; both directions summed if false."
    )
    temperature: Annotated[float, Field(gt=0.0)] = Field(default=1.0, description="Divides the similarities.")
    tag: str = Field(default="NCELoss", description="Name under which the loss is reported.")
    normalize: bool = Field(
        default=False,
        description="L2-normalize the embeddings first (cosine similarity); Modalities' NCELoss does not.",
    )
