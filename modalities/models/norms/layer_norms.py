"""Normalization layers and the builders of the ``layer_norm`` components."""

from __future__ import annotations

import torch
from torch import nn

from modalities.models.norms.config import LayerNormWrapperConfig


class RMSLayerNorm(nn.Module):
    """RMSNorm with an optional bias; normalizes in float32 so bf16 activations keep their precision."""

    def __init__(self, ndim: int, bias: bool = True, epsilon: float = 1e-6):
        super().__init__()
        self.epsilon = epsilon
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_float = x.float()
        normed = (x_float * torch.rsqrt(x_float.pow(2).mean(-1, keepdim=True) + self.epsilon)).type_as(x)
        out = normed * self.weight
        return out + self.bias if self.bias is not None else out

    def reset_parameters(self) -> None:
        # Called after a meta-device model is materialized (see models/initialization).
        nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


def layer_norm(
    normalized_shape: int, eps: float = 1e-6, elementwise_affine: bool = True, bias: bool = True
) -> nn.LayerNorm:
    return nn.LayerNorm(normalized_shape, eps=eps, elementwise_affine=elementwise_affine, bias=bias)


def rms_norm(ndim: int, epsilon: float = 1e-6, bias: bool = True) -> RMSLayerNorm:
    return RMSLayerNorm(ndim=ndim, bias=bias, epsilon=epsilon)


def pytorch_rms_norm(normalized_shape: int, eps: float = 1e-5) -> nn.RMSNorm:
    return nn.RMSNorm(normalized_shape, eps=eps)


_BUILDERS = {"layer_norm": layer_norm, "rms_norm": rms_norm, "pytorch_rms_norm": pytorch_rms_norm}


def build_norm(wrapper: LayerNormWrapperConfig) -> nn.Module:
    """The norm layer a `{norm_type, config}` block describes."""
    return _BUILDERS[wrapper.norm_type](**wrapper.config.model_dump())
