"""``model_initialization/gpt2_llama3_like``: Llama 3's initialization (as torchtitan does it) for model/gpt2.

Token embeddings N(0, 1); the output head truncated-normal with std 1/sqrt(d) cut at 3 std; q/k/v and the
SwiGLU gate W truncated-normal with std 0.02 cut at +-2; the residual projections (attention c_proj, SwiGLU V
and W_2) with std 0.02 / sqrt(2 (layer + 1)) when depth_init, else 0.02 / sqrt(2 num_layers). Norm scales keep
their defaults. A model with biases, or one a pattern does not match (not a Llama-shaped GPT-2), is refused.
"""

from __future__ import annotations

import math
import re
import warnings

import torch
from torch import nn

from modalities.checkpointing.compat import strip_wrapper_prefixes


def trunc_normal_(tensor: torch.Tensor, mean: float, std: float, a: float, b: float) -> None:
    # In float32 whatever the parameter's dtype: trunc_normal_ is unstable in low precision.
    tmp = tensor.float()
    nn.init.trunc_normal_(tmp, mean=mean, std=std, a=a, b=b)
    tensor.copy_(tmp)


class Llama3Initializer:
    def __init__(self, num_layers: int, n_embd: int, depth_init: bool = True):
        def residual_std(layer: int) -> float:
            return 0.02 / math.sqrt(2 * ((layer + 1) if depth_init else num_layers))

        scale = 1 / math.sqrt(n_embd)
        self.rules: list[tuple[str, object]] = [
            (r"transformer\.wte\.weight", lambda p, layer: nn.init.normal_(p, mean=0.0, std=1.0)),
            (r"transformer\.lm_head\.weight", lambda p, layer: trunc_normal_(p, 0.0, scale, -3 * scale, 3 * scale)),
            (r"transformer\.h\.\d+\.attn\.(q_attn|k_attn|v_attn)\.weight", lambda p, layer: trunc_normal_(p, 0.0, 0.02, -2, 2)),
            (r"transformer\.h\.\d+\.attn\.c_proj\.weight", lambda p, layer: trunc_normal_(p, 0.0, residual_std(layer), -2, 2)),
            (r"transformer\.h\.\d+\.mlp\.(W)\.weight", lambda p, layer: trunc_normal_(p, 0.0, 0.02, -2, 2)),
            (r"transformer\.h\.\d+\.mlp\.(V|W_2)\.weight", lambda p, layer: trunc_normal_(p, 0.0, residual_std(layer), -2, 2)),
        ]

    @torch.no_grad()
    def initialize_in_place(self, model: nn.Module) -> None:
        hits = dict.fromkeys((pattern for pattern, _ in self.rules), 0)
        for raw_name, parameter in model.named_parameters():
            name = strip_wrapper_prefixes(raw_name)
            if name.endswith("bias"):
                raise ValueError(f"gpt2_llama3_like initializes models without biases; {name} is a bias (set bias: false)")
            matches = [(pattern, init) for pattern, init in self.rules if re.fullmatch(pattern, name)]
            if len(matches) > 1:
                raise ValueError(f"{name} matches more than one gpt2_llama3_like rule")
            if not matches:
                if not re.search(r"norm", name):
                    warnings.warn(f"gpt2_llama3_like: {name} matches no rule and keeps its default init", stacklevel=2)
                continue
            pattern, init = matches[0]
            layer = re.search(r"transformer\.h\.(\d+)\.", name)
            init(parameter, int(layer.group(1)) if layer else None)
            hits[pattern] += 1
        unmatched = [pattern for pattern, count in hits.items() if count == 0]
        if unmatched:
            raise ValueError(
                "gpt2_llama3_like: no parameter matches " + ", ".join(unmatched) + " (it needs a Llama-shaped "
                "model/gpt2: activation_type swiglu, bias false)"
            )
