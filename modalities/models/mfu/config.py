"""Config of ``mfu_calculator/gpt2`` (torch-free)."""

from __future__ import annotations

from pydantic import AliasChoices, PositiveFloat

from modalities.registry.types import ComponentConfig, ComponentRef, Field, PositiveStrictInt


class GPT2MFUCalculatorConfig(ComponentConfig):
    """Model FLOPs utilization of a GPT-2-style model: achieved model FLOP/s over the devices' bf16 peak."""

    n_layer: PositiveStrictInt = Field(description="Number of transformer blocks (L in 12*L*T*d).")
    sequence_length: PositiveStrictInt = Field(description="Tokens per sample (T in 12*L*T*d).")
    n_embd: PositiveStrictInt = Field(description="Model width (d in 12*L*T*d).")
    world_size: PositiveStrictInt = Field(description="Number of devices the throughput is measured over.")
    wrapped_model: ComponentRef["model"] | list[ComponentRef["model"]] = Field(
        validation_alias=AliasChoices("wrapped_model", "model_parts"),
        description="The (possibly sharded) model, or its parts, whose parameters are counted (also `model_parts`, "
        "the reference's name).",
    )
    device_mesh: ComponentRef["device_mesh"] | None = Field(
        default=None, description="Accepted for Modalities configs; the device count is taken from world_size."
    )
    peak_flops_per_device: PositiveFloat | None = Field(
        default=None,
        description="Dense bf16 peak FLOP/s of one device, e.g. 989e12 for an H100 SXM. Default: looked up by the "
        "GPU's name (NVIDIA A10 to GB200, AMD MI210 to MI355X: modalities/models/mfu/peaks.py); a GPU not listed "
        "gets a warning and no MFU until this is set. Given, MFU is computed on any device (CPU included).",
    )
