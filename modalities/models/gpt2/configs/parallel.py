"""Configs of ``model/gpt2_tp`` and ``model/gpt2_cp`` (torch-free)."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from modalities.registry.types import ComponentConfig, ComponentRef, Field

_LOAD_BALANCER_DESCRIPTION = (
    "How a sequence is split over the mesh's cp ranks: headtail (each rank holds one chunk from the head and one "
    "from the tail, so causal attention costs every rank alike; needs a sequence length divisible by twice the "
    "degree, else the split is contiguous), or null (contiguous chunks). ptrr balances FlexAttention block masks, "
    "which model/gpt2 does not use, and is refused."
)


class _ContextParallelLoadBalancing(ComponentConfig):
    context_parallel_load_balancer: Literal["headtail", "ptrr"] | None = Field(
        default="headtail", description=_LOAD_BALANCER_DESCRIPTION
    )

    @field_validator("context_parallel_load_balancer")
    @classmethod
    def _no_ptrr(cls, value):
        if value == "ptrr":
            raise ValueError(
                "context_parallel_load_balancer ptrr balances FlexAttention block masks, and model/gpt2 attends "
                "with torch's scaled_dot_product_attention (ring attention under context parallelism); use "
                "headtail or null"
            )
        return value


class GPT2ModelTPConfig(_ContextParallelLoadBalancing):
    """A model/gpt2 split over the mesh's tensor-parallel dimension (with sequence parallelism)."""

    model: ComponentRef["model"] = Field(description="The model/gpt2 to parallelize (before FSDP2 wraps it).")
    device_mesh: ComponentRef["device_mesh"] = Field(
        description="A mesh with a `tp` dimension (device_mesh.config.tensor_parallel_degree above 1)."
    )


class GPT2ModelCPConfig(_ContextParallelLoadBalancing):
    """A model/gpt2 whose sequences are split over the mesh's context-parallel dimension (ring attention)."""

    model: ComponentRef["model"] = Field(description="The model/gpt2 (or its pipeline parts) before FSDP2 wraps it.")
    device_mesh: ComponentRef["device_mesh"] = Field(
        description="The run's mesh; its `cp` dimension (context_parallel_degree above 1) splits the sequences. "
        "Without one the model is returned as it is."
    )
