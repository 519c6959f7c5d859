"""`loss/moe_cross_entropy`: the language-modelling loss plus the auxiliary losses of a model's MoE blocks.

The reference adds to the cross-entropy the auxiliary losses of the blocks of the model (part) it is given. Under
pipeline parallelism that is the last stage's part only: the routers of earlier stages got no balancing gradient
and the reported loss left their auxiliary losses out. Here every block of the model (parts) given carries its
auxiliary loss's gradient on its output (``AuxLossGradient`` in model.py, scaled by ``scale_in_backward`` as the
training loop scales the loss), so each stage's backward gives its routers the gradient one process gives them;
the loss adds the auxiliary losses' values of the blocks that ran in its forward, and the pipeline step those of
the blocks of earlier stages (``pop_values_of_other_stages``), so the reported loss is one process's too.
"""

from __future__ import annotations

import torch
from torch import nn

from modalities.batch import InferenceResultBatch
from modalities.models.model_parts import as_parts
from modalities.models.moe.model import MoEBlock
from modalities.optim.loss import CLMCrossEntropyLoss


def moe_blocks_of(model: nn.Module | list[nn.Module]) -> list[MoEBlock]:
    return [module for part in as_parts(model) for module in part.modules() if isinstance(module, MoEBlock)]


def blocks_feeding_the_loss(model: nn.Module | list[nn.Module]) -> list[MoEBlock]:
    """The MoE blocks that ran in the forward ending in the logits a loss is given: every block of a whole model;
    of pipeline parts (a rank's stages), those of the part holding the output head, since the loss is computed
    right after that stage's forward."""
    parts = as_parts(model)
    if len(parts) > 1:
        parts = [part for part in parts if getattr(part, "lm_head", None) is not None]
    return moe_blocks_of(parts)


def aux_losses_of_other_stages(model_parts: nn.Module | list[nn.Module]) -> torch.Tensor | None:
    """The auxiliary losses this rank's MoE blocks outside the loss's stage (earlier pipeline stages) computed
    since the last call, summed (None where there are no such blocks). Clears the sums of every block."""
    feeding = {id(block) for block in blocks_feeding_the_loss(model_parts)}
    total = None
    for block in moe_blocks_of(model_parts):
        popped = block.pop_aux_loss_sum()
        if popped is not None and id(block) not in feeding:
            total = popped if total is None else total + popped
    return total


class MoECrossEntropyLoss(CLMCrossEntropyLoss):
    """Mean token cross-entropy (float32, as loss/clm_cross_entropy_loss) plus, for every MoE block of ``model``
    that ran in this forward, its auxiliary loss (load balancing and z, already weighted by their coefs).

    Every block of ``model`` sends its auxiliary loss's gradient along its output (see the module's docstring):
    the value added here is detached, and the training loop tells the loss by what it scales the loss in backward
    (``scale_in_backward``), which the blocks apply to their auxiliary losses' gradients alike."""

    def __init__(self, target_key: str, prediction_key: str, model: nn.Module | list[nn.Module],
                 tag: str = "MoECrossEntropyLoss"):
        super().__init__(target_key=target_key, prediction_key=prediction_key, tag=tag)
        self.model = model
        self.scale_in_backward(1.0)

    def scale_in_backward(self, factor: float) -> None:
        """The loss is backpropagated times ``factor`` (1 / the micro-batches a step averages over)."""
        for block in moe_blocks_of(self.model):
            block.aux_loss_backward_scale = factor

    def pop_values_of_other_stages(self) -> torch.Tensor | None:
        """What the blocks of this rank's earlier pipeline stages add to the loss: their auxiliary losses since
        the last call, summed over blocks and forwards (None where the rank has none)."""
        return aux_losses_of_other_stages(self.model)

    def __call__(self, forward_batch: InferenceResultBatch) -> torch.Tensor:
        loss = super().__call__(forward_batch)
        for block in blocks_feeding_the_loss(self.model):
            if block.last_aux_loss is not None:
                loss = loss + block.last_aux_loss.to(loss.dtype)
        return loss
