"""Model FLOPs utilization (MFU, PaLM appendix B) of GPT-2-style decoders.

Training FLOPs per token = 6 N + 12 L T d: 6 N for the forward (2 N) and backward (4 N) matrix multiplies
with the weights, and 12 L T d for the attention score and value products (QK^T and AV, forward and backward,
over T positions in each of L layers).

N counts the parameters that take part in a matrix multiply per token: all parameters except the embedding
tables, which are looked up, not multiplied, and except the experts a token does not run in a mixture of experts
(model/moe: a token runs top_k of each block's experts, so (E - k) / E of the expert weights are left out). With weight tying the shared matrix is counted once, as the
output projection (which is a real d x vocab multiply). Norm scales and biases are included: they are a
negligible fraction and not worth a second rule. Modalities counts all trainable parameters instead, which
overstates MFU by the (untied) embedding tables.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from modalities.models.mfu.peaks import peak_flops_of_device_name
from modalities.models.model_parts import sum_over_pipeline_stages

__all__ = ["GPT2MFUCalculator", "matmul_parameter_count", "peak_flops_of_device_name"]


def matmul_parameter_count(model: nn.Module) -> int:
    """Parameters a token multiplies with: all but embedding tables (an embedding shared with an output Linear
    counts once) and the experts a token does not run."""
    from modalities.models.moe.model import inactive_parameters_per_token

    # DTensor.numel() is the global size, so sharded models are counted whole.
    embedding_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    linear_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    total = sum(p.numel() for p in model.parameters() if id(p) not in embedding_weights or id(p) in linear_weights)
    return total - inactive_parameters_per_token(model)


class GPT2MFUCalculator:
    def __init__(
        self,
        n_layer: int,
        sequence_length: int,
        n_embd: int,
        world_size: int,
        wrapped_model: nn.Module,
        device_mesh: object | None = None,
        peak_flops_per_device: float | None = None,
    ):
        parts = wrapped_model if isinstance(wrapped_model, (list, tuple)) else [wrapped_model]
        # each pipeline rank holds some stages: the FLOPs per token are the whole model's
        self.num_matmul_parameters = sum_over_pipeline_stages(
            sum(matmul_parameter_count(part) for part in parts), device_mesh
        )
        self.sequence_length = sequence_length
        self.flops_per_token = 6 * self.num_matmul_parameters + 12 * n_layer * sequence_length * n_embd
        # Where the peak came from: "config" (given), "device" (the table, by the GPU's name) or None (CPU, or a
        # GPU the table does not know, which is said once: MFU is never silently missing on a GPU).
        self.peak_source = "config" if peak_flops_per_device is not None else None
        if peak_flops_per_device is None and torch.cuda.is_available():
            name = torch.cuda.get_device_name()
            peak_flops_per_device = peak_flops_of_device_name(name)
            if peak_flops_per_device is None:
                warnings.warn(
                    f"MFU is not computed: the bf16 peak of {name!r} is not in modalities/models/mfu/peaks.py; "
                    "set mfu_calculator.config.peak_flops_per_device (FLOP/s per device, dense bf16) to get it",
                    stacklevel=2,
                )
            else:
                self.peak_source = "device"
        self.peak_flops = peak_flops_per_device * world_size if peak_flops_per_device is not None else None

    def throughput(self, num_samples_per_second: float) -> dict[str, float | None]:
        """tokens/s, model FLOP/s and MFU (None without a known peak) for a global sample rate."""
        tokens_per_second = num_samples_per_second * self.sequence_length
        flops_per_second = tokens_per_second * self.flops_per_token
        mfu = flops_per_second / self.peak_flops if self.peak_flops else None
        return {"tokens_per_second": tokens_per_second, "model_flops_per_second": flops_per_second, "mfu": mfu}

    def compute(self, num_samples_per_second: float) -> float | None:
        """MFU in [0, 1], or None where the peak is unknown (e.g. CPU).

        ``num_samples_per_second`` is the global rate: samples/s summed over all ``world_size`` devices (the
        peak it is divided by is per-device peak x world_size)."""
        return self.throughput(num_samples_per_second)["mfu"]
