"""Configs of the normalization layers (torch-free).

The three variants keep the field names of Modalities' configs: ``layer_norm`` and ``pytorch_rms_norm`` follow
torch's own argument names (``normalized_shape``, ``eps``), ``rms_norm`` uses ``ndim`` and ``epsilon``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ValidationError, model_validator

from modalities.registry.types import ComponentConfig, Field, PositiveStrictInt

NormType = Literal["layer_norm", "rms_norm", "pytorch_rms_norm"]


class LayerNormConfig(ComponentConfig):
    """torch.nn.LayerNorm over the last dimension."""

    normalized_shape: PositiveStrictInt = Field(description="Size of the normalized (last) dimension, e.g. n_embd.")
    eps: float = Field(default=1e-6, gt=0, description="Added to the variance for numerical stability.")
    elementwise_affine: bool = Field(default=True, description="Learn a per-feature scale (and bias, see `bias`).")
    bias: bool = Field(default=True, description="Learn a per-feature bias (only with elementwise_affine).")


class RMSLayerNormConfig(ComponentConfig):
    """RMS normalization (Zhang & Sennrich 2019) computed in float32, with an optional learned bias."""

    ndim: PositiveStrictInt = Field(description="Size of the normalized (last) dimension, e.g. n_embd.")
    epsilon: float = Field(default=1e-6, gt=0, description="Added to the mean square for numerical stability.")
    bias: bool = Field(default=True, description="Learn a per-feature bias added after scaling.")


class PytorchRMSLayerNormConfig(ComponentConfig):
    """torch.nn.RMSNorm over the last dimension (learned scale, no bias)."""

    normalized_shape: PositiveStrictInt = Field(description="Size of the normalized (last) dimension, e.g. n_embd.")
    eps: float = Field(default=1e-5, gt=0, description="Added to the mean square for numerical stability.")


NORM_CONFIG_CLASSES: dict[str, type[ComponentConfig]] = {
    "layer_norm": LayerNormConfig,
    "rms_norm": RMSLayerNormConfig,
    "pytorch_rms_norm": PytorchRMSLayerNormConfig,
}


class LayerNormWrapperConfig(ComponentConfig):
    """A normalization layer inside a model: which kind (`norm_type`) and its settings (`config`)."""

    norm_type: NormType = Field(description="layer_norm (torch LayerNorm), rms_norm, or pytorch_rms_norm.")
    config: LayerNormConfig | RMSLayerNormConfig | PytorchRMSLayerNormConfig = Field(
        description="Settings of the chosen norm: the fields of its layer_norm/<norm_type> component."
    )

    @model_validator(mode="before")
    @classmethod
    def _validate_config_for_norm_type(cls, data: Any) -> Any:
        # The union alone cannot tell {normalized_shape, eps} of layer_norm from that of pytorch_rms_norm,
        # so the config is validated against the class its norm_type names.
        if (
            isinstance(data, dict)
            and data.get("norm_type") in NORM_CONFIG_CLASSES
            and isinstance(data.get("config"), dict)
        ):
            data = dict(data)
            config = dict(data["config"])
            if data["norm_type"] == "layer_norm" and not {"eps", "bias", "elementwise_affine"} & set(config):
                # The reference reads a {normalized_shape} block as a pytorch_rms_norm config (first in its union),
                # so such a layer norm gets that config's eps: 1e-5, not LayerNormConfig's 1e-6.
                config["eps"] = 1e-5
            try:
                data["config"] = NORM_CONFIG_CLASSES[data["norm_type"]].model_validate(config)
            except ValidationError as e:
                # Raised as they are, the inner errors would be placed at this model's own fields (their
                # locations are the inner config's); under `config` they point at the line to fix.
                raise ValidationError.from_exception_data(
                    cls.__name__,
                    [{"type": err["type"], "loc": ("config", *err["loc"]), "input": err["input"],
                      **({"ctx": err["ctx"]} if "ctx" in err else {})} for err in e.errors()],
                ) from None
        return data

    @property
    def normalized_size(self) -> int:
        return self.config.ndim if isinstance(self.config, RMSLayerNormConfig) else self.config.normalized_shape
