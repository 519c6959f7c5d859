"""`model/gpt2_tp`: tensor parallelism with sequence parallelism for `model/gpt2`, on torch's own APIs.

The plan is the reference's (and torchtitan's): each block's q/k/v and first MLP projections are split by output
features (column-wise: each rank holds a slice of the heads / hidden units), the output projections by input
features (row-wise), so a block costs one all-gather before attention and the MLP and one reduce-scatter after;
between them the residual stream and the norms are split along the sequence (sequence parallelism), so
activations of norms and dropout are not held in full on every rank. Token and position embeddings are split by
rows (vocabulary, positions) and hand their output on split along the sequence; the head gathers it back and
returns full logits on every rank. Heads per rank are the model's heads divided by the tp degree.

Weight tying survives: the embedding and the head are both split along the vocabulary (Shard(0) on the tp
mesh), so after parallelizing the embedding is pointed at the head's weight again, as the model ties them.
Compose with FSDP2 by wrapping the result with `model/fsdp2_wrapped` on the same mesh (it shards over the
data-parallel dimensions only). With tensor_parallel_degree 1 the model is returned as it is.
"""

from __future__ import annotations

from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import Replicate, Shard
from torch.distributed.tensor.parallel import (
    ColwiseParallel,
    PrepareModuleInput,
    RowwiseParallel,
    SequenceParallel,
    parallelize_module,
)

from modalities.models.gpt2.config import tensor_parallel_misfits
from modalities.models.gpt2.context_parallel import mark_context_parallel
from modalities.models.gpt2.model import GPT2LLM, SwiGLU, TransformerMLP
from modalities.models.model_parts import for_each_part

TP = "tp"


class TensorParallelError(ValueError):
    pass


@for_each_part
def tensor_parallelize_gpt2(
    model: GPT2LLM, device_mesh: DeviceMesh, context_parallel_load_balancer: str | None = "headtail"
) -> GPT2LLM:
    """Parallelize ``model`` in place over the ``tp`` dimension of ``device_mesh``; returns it. With a ``cp``
    dimension too, the model is also marked for context parallelism (as model/gpt2_cp does), as the reference's
    gpt2_tp takes ``context_parallel_load_balancer``."""
    mark_context_parallel(model, device_mesh, context_parallel_load_balancer, "model/gpt2_tp")
    names = device_mesh.mesh_dim_names or ()
    if TP not in names:
        # tensor_parallel_degree 1: the mesh has no tp dimension and there is nothing to split. (The reference
        # refuses; accepting it lets one config run on any layout, e.g. on one process to compare.)
        return model
    if "dp_replicate" in names:
        raise TensorParallelError(
            "model/gpt2_tp with data_parallel_replicate_degree > 1 is not supported (as in the reference): combine "
            "tensor parallelism with dp_shard"
        )
    if not isinstance(model, GPT2LLM):
        raise TensorParallelError(f"model/gpt2_tp parallelizes a model/gpt2, not a {type(model).__name__}")
    tp_mesh = device_mesh[TP]
    degree = tp_mesh.size()
    loss_parallel = getattr(device_mesh, "loss_parallel", False)
    # With context parallelism every forward gets the positions of the tokens a rank holds (batch, tokens): the
    # position table's output is then split along the sequence like the tokens', and attention takes them too.
    positions_given = "cp" in names
    _check_divisible(model, degree)
    layers = model.transformer
    tied = model.use_weight_tying

    plan: dict[str, object] = {
        # Embedding tables are split by rows: each rank looks up the ids it holds, the partial results are
        # reduce-scattered along the sequence for the sequence-parallel blocks.
        "transformer.wte": RowwiseParallel(input_layouts=Replicate(), output_layouts=Shard(1)),
        "transformer.lm_head_norm": SequenceParallel(),
        # Full logits on every rank; with loss parallelism each rank keeps its vocabulary shard (a DTensor) and
        # the loss is computed on the shards.
        "transformer.lm_head": ColwiseParallel(input_layouts=Shard(1), output_layouts=Shard(-1), use_local_output=False)
        if loss_parallel else ColwiseParallel(input_layouts=Shard(1), output_layouts=Replicate(), use_local_output=True),
    }
    if isinstance(getattr(layers, "wpe", None), nn.Embedding):
        plan["transformer.wpe"] = RowwiseParallel(input_layouts=Replicate(),
                                                  output_layouts=Shard(1) if positions_given else Shard(0))
    # A pipeline stage holds some of these modules only.
    plan = {name: style for name, style in plan.items() if name.split(".")[1] in layers}
    if plan:
        parallelize_module(model, tp_mesh, plan)

    block_plan: dict[str, object] = {
        "attention_norm": SequenceParallel(),
        "attn": PrepareModuleInput(input_layouts=(Shard(1), None), desired_input_layouts=(Replicate(), None))
        if positions_given else PrepareModuleInput(input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),)),
        "attn.q_attn": ColwiseParallel(),
        "attn.k_attn": ColwiseParallel(),
        "attn.v_attn": ColwiseParallel(),
        "attn.c_proj": RowwiseParallel(output_layouts=Shard(1)),
        "ffn_norm": SequenceParallel(),
        "mlp": PrepareModuleInput(input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),)),
    }
    for block in layers.h.values() if "h" in layers else ():
        if isinstance(block.mlp, SwiGLU):
            mlp_plan = {"mlp.W": ColwiseParallel(), "mlp.V": ColwiseParallel(),
                        "mlp.W_2": RowwiseParallel(output_layouts=Shard(1))}
        elif isinstance(block.mlp, TransformerMLP):
            mlp_plan = {"mlp.c_fc": ColwiseParallel(), "mlp.c_proj": RowwiseParallel(output_layouts=Shard(1))}
        else:
            raise TensorParallelError(f"model/gpt2_tp does not know the MLP {type(block.mlp).__name__}")
        block.attn.n_head_q //= degree
        block.attn.n_head_kv //= degree
        parallelize_module(block, tp_mesh, {**block_plan, **mlp_plan})
    if tied:
        layers.wte.weight = layers.lm_head.weight  # both Shard(0) on the tp mesh: one parameter again
    return model


def _check_divisible(model: GPT2LLM, degree: int) -> None:
    config = model.config
    if config.attention_config.qk_norm_config is not None:
        raise TensorParallelError("model/gpt2_tp does not support qk-norm (attention_config.qk_norm_config) yet")
    blocks = model.transformer.h.values() if "h" in model.transformer else ()
    hidden = next(iter(blocks)).mlp if blocks else None
    width = hidden.W.out_features if isinstance(hidden, SwiGLU) else config.ffn_hidden
    problems = tensor_parallel_misfits(degree, {"n_head_q": config.n_head_q, "n_head_kv": config.n_head_kv,
                                                "vocab_size": config.vocab_size, "the MLP's hidden width": width})
    if problems:
        raise TensorParallelError(
            f"tensor_parallel_degree {degree} must divide {', '.join(problems)}; choose a degree that divides them"
        )
