"""The transformers config of an exported Modalities ``model/gpt2`` (written by ``modalities convert to-hf
--remote-code``; needs only torch and transformers)."""

from transformers import PretrainedConfig


class ModalitiesGPT2Config(PretrainedConfig):
    """Norms are described as ``{"kind": "layer_norm" | "rms_norm" | "float32_rms_norm", "eps": float,
    "weight": bool, "bias": bool}``; ``qk_norm`` is one such description or None (no q/k norm)."""

    model_type = "modalities_gpt2"

    def __init__(
        self,
        vocab_size=50304,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        num_key_value_heads=12,
        intermediate_size=3072,
        max_position_embeddings=1024,
        position_embedding_type="absolute",
        rope_theta=10000,
        hidden_act="gelu",
        bias=True,
        attention_norm=None,
        ffn_norm=None,
        final_norm=None,
        qk_norm=None,
        modalities_config=None,
        tie_word_embeddings=True,
        **kwargs,
    ):
        layer_norm = {"kind": "layer_norm", "eps": 1e-5, "weight": True, "bias": True}
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.position_embedding_type = position_embedding_type  # "absolute" (learned table) or "rope"
        self.rope_theta = rope_theta
        self.hidden_act = hidden_act  # "gelu" (exact erf) or "swiglu"
        self.bias = bias  # biases on every linear but the output head
        self.attention_norm = attention_norm or layer_norm
        self.ffn_norm = ffn_norm or layer_norm
        self.final_norm = final_norm or layer_norm
        self.qk_norm = qk_norm
        self.modalities_config = modalities_config  # the model/gpt2 config this was exported from
        kwargs.setdefault("use_cache", False)  # no key/value cache: generation recomputes the prefix
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)
