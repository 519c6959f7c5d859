"""`model/gpt2_cp`: a model/gpt2 (or its pipeline parts) to be trained with its sequences split over the mesh's
``cp`` dimension, as the reference spells it.

The split itself happens in the training loop (training/context_parallel.py): each batch's tokens, targets and
positions are cut along the sequence and torch's ring attention stands in for scaled_dot_product_attention while
the model runs. What this component adds is the model's side of the contract: it is a model/gpt2 that attends
with torch's SDPA (which ring attention replaces; the manual and flash-attn implementations would attend within
a rank's share only), and the choice of load balancer. Without a cp dimension the model is returned as it is.
"""

from __future__ import annotations

from torch.distributed.device_mesh import DeviceMesh

from modalities.models.gpt2.model import GPT2LLM
from modalities.models.model_parts import CONTEXT_PARALLEL_LOAD_BALANCER_ATTRIBUTE, for_each_part


class ContextParallelError(ValueError):
    pass


@for_each_part
def context_parallelize_gpt2(
    model: GPT2LLM, device_mesh: DeviceMesh, context_parallel_load_balancer: str | None = "headtail"
) -> GPT2LLM:
    mark_context_parallel(model, device_mesh, context_parallel_load_balancer, "model/gpt2_cp")
    return model


def mark_context_parallel(model, device_mesh: DeviceMesh, load_balancer: str | None, component: str) -> None:
    """Check that ``model`` can run with its sequences split over the mesh's cp ranks and record how to split them."""
    if "cp" not in (device_mesh.mesh_dim_names or ()):
        return
    if not isinstance(model, GPT2LLM):
        raise ContextParallelError(f"{component} splits the sequences of a model/gpt2, not of a {type(model).__name__}")
    implementation = model.config.attention_implementation
    if implementation != "pytorch_flash":
        raise ContextParallelError(
            f"{component}: attention_implementation {implementation} attends within a rank's share of the sequence "
            "only; context parallelism replaces torch's scaled_dot_product_attention (pytorch_flash) by ring attention"
        )
    setattr(model, CONTEXT_PARALLEL_LOAD_BALANCER_ATTRIBUTE, load_balancer)
