"""An exception inside the training loop: what state it leaves, what can be saved of it, and the message.

Where in a step the exception is raised decides what a checkpoint could hold (docs/multi-node.md, "When a step
fails"):

- before the optimizer step (loading data, forward and backward, gradient clipping, the step's loss and its
  NaN check): the weights and the optimizer are those after the previous step, so that step is saved, with the
  data position and random states from before the failing step (a resume repeats it exactly);
- in the optimizer step: the weights may be partly updated; nothing consistent is left to save;
- in the learning-rate scheduler step, or after the step (logging, evaluation, subscribers, the profiler): the
  step is done and is saved (a resume positions the schedule from the config);
- in saving a checkpoint: nothing more is saved (the previous checkpoint stays whole: saves are atomic).

With several ranks a checkpoint needs every rank: it is saved only when all ranks failed in the same step and
part of it (they agree over a side group with a timeout). A failure on some ranks only leaves the others waiting
in a collective, so nothing is saved; the run ends with the message, and the launcher stops the other ranks.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

FORWARD = "loading data, forward and backward"
CLIPPING = "gradient clipping"
LOSS = "the step's loss"
OPTIMIZER = "the optimizer step"
SCHEDULER = "the learning-rate scheduler step"
AFTER_STEP = "logging, evaluation and subscribers after the step"
SAVING = "saving a checkpoint"

BEFORE, DONE = "the step before", "the step"
# phase -> the state a checkpoint can hold after a failure there (None: no consistent state)
STATE_LEFT = {FORWARD: BEFORE, CLIPPING: BEFORE, LOSS: BEFORE, OPTIMIZER: None, SCHEDULER: DONE, AFTER_STEP: DONE,
              SAVING: None}
_WHY_NOT = {
    OPTIMIZER: "the optimizer step had begun, so weights and optimizer state may be partly updated",
    SAVING: "it failed while saving a checkpoint",
}

AGREEMENT_TIMEOUT_ENV = "MODALITIES_FAILURE_AGREEMENT_TIMEOUT_S"  # how long ranks wait for each other (default 60)
# Test hook: "STEP:PHASE[:RANK]" raises a RuntimeError in that step and part (forward, optimizer, scheduler,
# evaluation), on every rank or one.
FAIL_AT_ENV = "MODALITIES_TEST_FAIL_AT"


class TrainingFailed(RuntimeError):
    """An exception inside the training loop, with the step and part it happened in and what was saved."""

    def __init__(self, message: str, step: int, checkpoint: str | None):
        super().__init__(message)
        self.step, self.checkpoint = step, checkpoint


def test_hook_fail(step: int, phase: str) -> None:
    spec = os.environ.get(FAIL_AT_ENV)
    if not spec:
        return
    at_step, at_phase, *rank = spec.split(":")
    this_rank = dist.get_rank() if dist.is_initialized() else 0
    if int(at_step) == step and at_phase == phase and (not rank or int(rank[0]) == this_rank):
        raise RuntimeError(f"[test hook] failing in {phase} at step {step}")


def failure_group():
    """A gloo group over all ranks in which they agree on a failure, with a timeout of its own (a rank that did
    not fail is stuck in a collective of the main group and never answers). None with one rank."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return None
    seconds = float(os.environ.get(AGREEMENT_TIMEOUT_ENV, "60") or 60)
    return dist.new_group(backend="gloo", timeout=timedelta(seconds=seconds))


def all_failed_alike(group, step: int, phase: str) -> bool:
    """Whether every rank failed in ``step`` and ``phase`` (True with one rank)."""
    if group is None:
        return True
    code = list(STATE_LEFT).index(phase)
    mine = torch.tensor([step, code, -step, -code], dtype=torch.float64)
    try:
        dist.all_reduce(mine, op=dist.ReduceOp.MAX, group=group)
    except RuntimeError:  # a rank did not come: it did not fail here
        return False
    return bool(mine[0] == -mine[2] and mine[1] == -mine[3])


def settle(model_parts: list[nn.Module], optimizer) -> None:
    """Put an interrupted model back in the state a checkpoint reads: no gradients, FSDP2 parameters sharded (a
    forward that raised leaves them gathered)."""
    from torch.distributed.fsdp import FSDPModule

    optimizer.zero_grad(set_to_none=True)
    for part in model_parts:
        for module in part.modules():
            if isinstance(module, FSDPModule):
                module.reshard()


def describe(error: BaseException, step: int, phase: str) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    text = text if len(text) <= 500 else text[:500] + "..."
    return f"training failed in step {step}, in {phase}: {type(error).__name__}{': ' + text if text else ''}"


def what_was_saved(phase: str, saved: str | None, saved_step: int | None, last_checkpoint: str | None,
                   agreed: bool, save_error: BaseException | None, saves: bool) -> str:
    """The sentence that tells what of the run is kept."""
    if saved is not None:
        return (f"step {saved_step} is saved: {saved}; once the cause is fixed, continue with --resume {saved} "
                "(or --resume auto)")
    if save_error is not None:
        reason = f"saving it failed too ({type(save_error).__name__}: {str(save_error)[:300]})"
    elif not saves:
        reason = "this run saves no checkpoints"
    elif STATE_LEFT.get(phase) is None:
        reason = _WHY_NOT[phase]
    elif not agreed:
        reason = "the other ranks did not fail in the same step and part (they wait in a collective)"
    else:
        reason = "it was saved already"
    where = f"; the last checkpoint is {last_checkpoint}" if last_checkpoint else "; no checkpoint was saved before"
    return f"nothing more is saved: {reason}{where}"
