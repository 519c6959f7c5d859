"""What one training step's forward and loss need, shared by the plain loop (gym.py) and the pipelined step
(pipeline.py): the batch's inputs under context parallelism, torch's loss parallelism, and the loss as a plain
tensor."""

from __future__ import annotations

import contextlib

import torch


def loss_parallel_context(enabled: bool):
    """torch's loss_parallel while the loss is computed and backpropagated (the logits are vocabulary shards)."""
    if not enabled:
        return contextlib.nullcontext()
    from torch.distributed.tensor.parallel import loss_parallel

    return loss_parallel()


def plain_tensor(value: torch.Tensor) -> torch.Tensor:
    """A loss as a plain tensor (under loss parallelism it is a replicated DTensor)."""
    full_tensor = getattr(value, "full_tensor", None)
    return full_tensor() if full_tensor is not None else value


def model_inputs(batch, context_parallel=None):
    """A context giving (the model's inputs, the loss's targets) of ``batch``: its samples and targets, or under
    context parallelism this rank's share of them, with ring attention in force."""
    if context_parallel is None:
        return contextlib.nullcontext((batch.samples, batch.targets))
    return context_parallel.shard(batch.samples, batch.targets)


def scale_loss_in_backward(loss_fn, factor: float) -> None:
    """Tells a loss by what factor its value is backpropagated (1 / the micro-batches a step averages over), for
    parts of it whose gradient takes another path than its value (loss/moe_cross_entropy's auxiliary losses ride
    on the MoE blocks' outputs)."""
    scale = getattr(loss_fn, "scale_in_backward", None)
    if callable(scale):
        scale(factor)
