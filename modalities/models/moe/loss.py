"""`loss/moe_cross_entropy`: the language-modelling loss plus the auxiliary losses of a model's MoE blocks."""

from __future__ import annotations

import torch
from torch import nn

from modalities.batch import InferenceResultBatch
from modalities.models.moe.model import MoEBlock
from modalities.optim.loss import CLMCrossEntropyLoss


def blocks_feeding_the_loss(model: nn.Module | list[nn.Module]) -> list[MoEBlock]:
    """The MoE blocks whose auxiliary losses belong to the loss of a forward that ends in logits: every block of
    a whole model; of pipeline parts (a rank's stages), those of the part holding the output head, since the loss
    is computed right after that stage's forward (as in the reference, whose loss reads the blocks of the part it
    is given: the blocks of earlier stages add no auxiliary loss)."""
    parts = list(model) if isinstance(model, (list, tuple)) else [model]
    if len(parts) > 1:
        parts = [part for part in parts if getattr(part, "lm_head", None) is not None]
    return [module for part in parts for module in part.modules() if isinstance(module, MoEBlock)]


class MoECrossEntropyLoss(CLMCrossEntropyLoss):
    """Mean token cross-entropy (float32, as loss/clm_cross_entropy_loss) plus, for every MoE block of ``model``
    that ran in this forward, its auxiliary loss (load balancing and z, already weighted by their coefs)."""

    def __init__(self, target_key: str, prediction_key: str, model: nn.Module | list[nn.Module],
                 tag: str = "MoECrossEntropyLoss"):
        super().__init__(target_key=target_key, prediction_key=prediction_key, tag=tag)
        self.model = model

    def __call__(self, forward_batch: InferenceResultBatch) -> torch.Tensor:
        loss = super().__call__(forward_batch)
        for block in blocks_feeding_the_loss(self.model):
            if block.last_aux_loss is not None:
                loss = loss + block.last_aux_loss.to(loss.dtype)
        return loss
