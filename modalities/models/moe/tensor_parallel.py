"""`model/qwen_tp`: tensor parallelism for `model/moe`, on torch's own APIs.

Attention is split by heads (Megatron's plan): q/k/v column-wise, o_proj row-wise, so each rank runs
n_heads / tp query heads and n_kv_heads / tp key/value heads and one all-reduce joins them. The q/k norms (one
scale vector shared by all heads) see this rank's heads only; as DTensors replicated over the tp ranks their
gradients are summed over the ranks' heads. The token embedding is split by vocabulary rows and the head by
vocabulary columns; both hand on full tensors, so the norms, the router and the experts run on the whole
batch on every tp rank: a block's routing is the same on all of them, and the experts are split by
model/ep_wrapped (expert parallelism) rather than by tp. Tied embeddings stay tied (both Shard(0) on the tp mesh).

Compose with FSDP2 by wrapping the result with `model/fsdp2_wrapped` on the same mesh. With tensor_parallel_degree
1 the model is returned as it is.
"""

from __future__ import annotations

from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import Replicate
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, SequenceParallel, parallelize_module

from modalities.models.gpt2.config import tensor_parallel_misfits
from modalities.models.gpt2.tensor_parallel import TP, TensorParallelError
from modalities.models.model_parts import for_each_part
from modalities.models.moe.model import QwenModel


@for_each_part
def tensor_parallelize_qwen(model: QwenModel, device_mesh: DeviceMesh) -> QwenModel:
    """Parallelize ``model`` in place over the ``tp`` dimension of ``device_mesh``; returns it."""
    names = device_mesh.mesh_dim_names or ()
    if TP not in names:
        return model
    if not isinstance(model, QwenModel):
        raise TensorParallelError(f"model/qwen_tp parallelizes a model/moe, not a {type(model).__name__}")
    refused = {"dp_replicate" in names: "data_parallel_replicate_degree > 1 (combine tensor parallelism with dp_shard)",
               getattr(device_mesh, "loss_parallel", False): "enable_loss_parallel (it hands full logits to the loss)",
               getattr(device_mesh, "ep_borrowed_dim", None) == TP: "experts split over tp (ep_wrapped's "
               "ep_mesh_dim_name: tp; use expert_parallel_degree)"}
    if True in refused:
        raise TensorParallelError(f"model/qwen_tp does not combine with {refused[True]}")
    tp_mesh = device_mesh[TP]
    degree = tp_mesh.size()
    config = model.config
    misfits = tensor_parallel_misfits(degree, {"n_heads": config.n_heads, "n_kv_heads": config.n_kv_heads,
                                               "vocab_size": config.vocab_size})
    if misfits:
        raise TensorParallelError(f"tensor_parallel_degree {degree} must divide {', '.join(misfits)}; choose a "
                                  "degree that divides them")
    plan = {
        "token_emb": RowwiseParallel(input_layouts=Replicate(), output_layouts=Replicate()),
        "lm_head": ColwiseParallel(output_layouts=Replicate()),
    }
    plan = {name: style for name, style in plan.items() if getattr(model, name, None) is not None}
    if plan:
        parallelize_module(model, tp_mesh, plan)
    block_plan = {
        "attn.q_proj": ColwiseParallel(),
        "attn.k_proj": ColwiseParallel(),
        "attn.v_proj": ColwiseParallel(),
        "attn.o_proj": RowwiseParallel(),
        # (batch, tokens, this rank's heads, head_dim): the heads are the split dimension
        "attn.q_norm": SequenceParallel(sequence_dim=2, use_local_output=True),
        "attn.k_norm": SequenceParallel(sequence_dim=2, use_local_output=True),
    }
    for block in model.layers.values() if model.layers is not None else ():
        parallelize_module(block, tp_mesh, block_plan)
    if config.tie_embeddings and model.token_emb is not None and model.lm_head is not None:
        model.lm_head.weight = model.token_emb.weight  # both Shard(0) on the tp mesh: one parameter again
    return model
