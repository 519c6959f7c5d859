"""Context parallelism: each rank of the mesh's ``cp`` dimension holds a share of every sequence, and attention
runs as torch's ring attention (``torch.distributed.tensor.experimental.context_parallel``), passing key/value
shards around the ring.

torch shards the batch's tensors along the sequence in load-balanced order (head and tail chunks, so that causal
attention costs every rank alike; ``context_parallel_load_balancer: null`` on model/gpt2_cp or model/gpt2_tp asks
for contiguous chunks), so each rank also gets the positions of the tokens it holds (``POSITIONS_KEY`` in the
samples), which the model uses for its position embeddings and rotary angles. A pipeline stage is fed a tensor by
torch's schedule, so there the positions are held around the schedule's step instead (``held_token_positions``). The loss
of a rank is the mean over its tokens; FSDP2 averages gradients over ``dp_shard x cp``, so the step is that of
the whole sequence's mean (every rank holds as many tokens).

torch ships ring attention for its CUDA kernels only (flash, memory-efficient, cuDNN). Its CPU flash kernel
computes the same (output, logsumexp) pair, so it is registered here with the same ring and the same
collectives: context parallelism runs on CPU ranks with gloo too, which is how the tests check it against one
process. The registration uses torch's private context-parallel module; where that module differs (another
torch version), context parallelism on CPU is refused with a message and CUDA is unaffected.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.distributed.device_mesh import DeviceMesh

from modalities.models.gpt2.model import POSITIONS_KEY
from modalities.models.model_parts import CONTEXT_PARALLEL_LOAD_BALANCER_ATTRIBUTE, as_parts
from modalities.training.distributed import TrainingSetupError

_CPU_RING_ATTENTION: dict | None = None


def context_parallel_mesh(device_mesh: DeviceMesh | None) -> DeviceMesh | None:
    """The mesh's ``cp`` dimension, or None where there is no context parallelism."""
    names = getattr(device_mesh, "mesh_dim_names", None) or ()
    return device_mesh["cp"] if "cp" in names else None


def load_balancer_of(model_parts) -> str | None:
    """The load balancer model/gpt2_cp or model/gpt2_tp recorded on the model (parts); headtail by default."""
    parts = as_parts(model_parts)
    for part in parts:
        for module in part.modules():  # the attribute sits on the model/gpt2 inside any wrapper
            if hasattr(module, CONTEXT_PARALLEL_LOAD_BALANCER_ATTRIBUTE):
                return getattr(module, CONTEXT_PARALLEL_LOAD_BALANCER_ATTRIBUTE)
    return "headtail"


class ContextParallel:
    """Splits each batch over the ranks of ``cp_mesh`` for a forward (and backward) pass; ``load_balancer``
    "headtail" (torch's default: balanced causal attention) or None (contiguous chunks)."""

    def __init__(self, cp_mesh: DeviceMesh, load_balancer: str | None = "headtail"):
        if load_balancer not in ("headtail", None):
            raise TrainingSetupError(f"context_parallel_load_balancer {load_balancer!r}: use headtail or null")
        self.mesh = cp_mesh
        self.degree = cp_mesh.size()
        self.load_balancer = load_balancer
        if cp_mesh.device_type == "cpu":
            _register_cpu_ring_attention()

    @contextlib.contextmanager
    def shard(self, samples: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> Iterator[tuple[dict, dict]]:
        """Within: this rank's share of ``samples`` (plus the positions of the tokens it holds, the model's
        inputs) and of ``targets``, with ring attention in place of torch's attention. The batch's own tensors are
        left whole: torch splits tensors in place, so copies are split (a collator's samples and targets are
        often views of one block, which splitting one in place would overwrite in the other)."""
        from torch.distributed.tensor.experimental import context_parallel

        tensors = {**samples, **targets}
        first = next(iter(samples.values()))
        length = first.shape[1]
        for name, tensor in tensors.items():
            if tensor.dim() < 2 or tensor.shape[1] != length:
                raise TrainingSetupError(
                    f"context parallelism splits every sample and target along the sequence, but {name!r} has shape "
                    f"{tuple(tensor.shape)} where samples have {length} tokens"
                )
        if length % self.degree:
            raise TrainingSetupError(
                f"samples of {length} tokens cannot be split over context_parallel_degree {self.degree}; use a "
                "sequence length divisible by it (by twice the degree for balanced causal attention)"
            )
        copies = {name: tensor.clone(memory_format=torch.contiguous_format) for name, tensor in tensors.items()}
        positions = torch.arange(length, device=first.device).expand(first.shape[0], length).contiguous()
        buffers = [*copies.values(), positions]
        with _cpu_ring_attention_rules(self.mesh.device_type), _load_balancing(self.load_balancer is not None), \
                context_parallel(self.mesh, buffers=buffers, buffer_seq_dims=[1] * len(buffers),
                                 no_restore_buffers=set(buffers)):
            yield ({**{name: copies[name] for name in samples}, POSITIONS_KEY: positions},
                   {name: copies[name] for name in targets})


@contextlib.contextmanager
def _load_balancing(enabled: bool) -> Iterator[None]:
    """torch's context_parallel balances (head and tail chunks) unless its option says not to; it reads the
    option when entered and keeps it for the ring attention's causal masks within."""
    from torch.distributed.tensor.experimental._attention import _cp_options

    before = _cp_options.enable_load_balance
    _cp_options.enable_load_balance = enabled
    try:
        yield
    finally:
        _cp_options.enable_load_balance = before


def _register_cpu_ring_attention() -> None:
    """Adds torch's CPU flash-attention kernel (forward and backward) to the ops its ring attention handles."""
    global _CPU_RING_ATTENTION
    if _CPU_RING_ATTENTION is not None:
        return
    try:
        from torch.distributed.tensor import DTensor, Shard
        from torch.distributed.tensor._op_schema import OpStrategy, RuntimeSchemaInfo
        from torch.distributed.tensor._ops.utils import expand_to_full_mesh_op_strategy
        from torch.distributed.tensor.experimental._context_parallel import _attention
        from torch.distributed.tensor.experimental._context_parallel._sharding_rules import _op_strategy_context

        ring_forward, ring_backward = _attention._templated_ring_attention, _attention._templated_ring_attention_backward
        custom_ops = _attention.custom_ops
    except (ImportError, AttributeError) as e:
        raise TrainingSetupError(
            f"context parallelism on CPU ranks needs torch's ring attention internals as of torch 2.13, which this "
            f"torch {torch.__version__} does not have ({e}); run it on CUDA devices"
        ) from None
    aten = torch.ops.aten
    forward_op = aten._scaled_dot_product_flash_attention_for_cpu
    backward_op = aten._scaled_dot_product_flash_attention_for_cpu_backward.default
    seq_dim = 2  # (batch, heads, sequence, head_dim)

    def forward_strategy(op_schema):
        # output, logsumexp, query, key, value: all split along the sequence
        return expand_to_full_mesh_op_strategy(op_schema.get_mesh_from_args(), op_schema, [[Shard(seq_dim)] * 5],
                                               input_index=2)

    def backward_strategy(op_schema):
        tensors = sum(isinstance(arg, OpStrategy) for arg in op_schema.args_schema)
        return expand_to_full_mesh_op_strategy(op_schema.get_mesh_from_args(validate=False), op_schema,
                                               [[Shard(seq_dim)] * (3 + tensors)], input_index=3)

    def ring(mesh, query, key, value, dropout_p=0.0, is_causal=False, *, attn_mask=None, scale=None):
        if attn_mask is not None:
            raise NotImplementedError("ring attention takes causal masking only, not an attention mask")
        return ring_forward(mesh.get_group(), seq_dim, forward_op, query=query, key=key, value=value,
                            is_causal=is_causal, dropout_p=dropout_p, scale=scale)

    def ring_gradients(mesh, grad_out, query, key, value, out, logsumexp, dropout_p, is_causal, *, attn_mask=None,
                       scale=None):
        return ring_backward(mesh.get_group(), seq_dim, backward_op, grad_out=grad_out, grad_out_name="grad_out",
                             query=query, key=key, value=value, out=out, logsumexp=logsumexp, is_causal=is_causal,
                             dropout_p=dropout_p, scale=scale)

    def handler(op_call, args, kwargs):
        # As torch's handler of its CUDA kernels: local shards in, ring attention, DTensors out.
        dispatcher = DTensor._op_dispatcher
        info = dispatcher.unwrap_to_op_info(op_call, args, kwargs)
        dispatcher.sharding_propagator.propagate(info)
        if info.output_sharding is None or info.output_sharding.needs_redistribute:
            raise RuntimeError("ring attention expects query, key and value split along the sequence")
        run = ring if op_call == forward_op.default else ring_gradients
        return dispatcher.wrap(run(info.compute_mesh, *info.local_args, **info.local_kwargs),
                               info.output_sharding.output_spec)

    custom_ops[forward_op.default] = handler
    custom_ops[backward_op] = handler
    _CPU_RING_ATTENTION = {
        "rules": [(forward_op.default, forward_strategy, RuntimeSchemaInfo(3)), (backward_op, backward_strategy, None)],
        "context": _op_strategy_context,
    }


@contextlib.contextmanager
def _cpu_ring_attention_rules(device_type: str) -> Iterator[None]:
    """The sharding rules of the CPU kernel, registered while a batch is split (as torch does for its own)."""
    if device_type != "cpu" or _CPU_RING_ATTENTION is None:
        yield
        return
    with contextlib.ExitStack() as stack:
        for op, strategy, schema_info in _CPU_RING_ATTENTION["rules"]:
            stack.enter_context(_CPU_RING_ATTENTION["context"](op, strategy, schema_info))
        yield
