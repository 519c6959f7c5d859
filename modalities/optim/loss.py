"""Loss functions: called with an :class:`InferenceResultBatch`, they return a scalar tensor."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from modalities.batch import InferenceResultBatch


class CLMCrossEntropyLoss:
    """Mean cross-entropy over every target token of the local batch.

    Logits ``[B, T, V]`` are compared with targets ``[B, T]`` position by position (the collator has already
    shifted the targets by one). Targets equal to ``ignore_index`` are left out of the sum and of the count;
    so are positions where the batch's targets carry an ``attention_mask`` of 0.
    """

    def __init__(
        self,
        target_key: str,
        prediction_key: str,
        ignore_index: int = -100,
        weight: float = 1.0,
        tag: str = "CLMCrossEntropyLoss",
    ):
        self.target_key = target_key
        self.prediction_key = prediction_key
        self.ignore_index = ignore_index
        self.weight = weight
        self.tag = tag

    def __call__(self, forward_batch: InferenceResultBatch) -> torch.Tensor:
        logits = forward_batch.get_predictions(self.prediction_key)
        targets = forward_batch.get_targets(self.target_key).to(logits.device)
        if logits.shape[:-1] != targets.shape:
            raise ValueError(
                f"loss {self.tag}: logits '{self.prediction_key}' have shape {tuple(logits.shape)} but targets "
                f"'{self.target_key}' have shape {tuple(targets.shape)}; expected logits [B, T, V] and "
                "targets [B, T]"
            )
        if "attention_mask" in forward_batch.targets:
            mask = forward_batch.targets["attention_mask"].to(targets.device)
            targets = torch.where(mask == 0, torch.full_like(targets, self.ignore_index), targets)
        # Low-precision logits lose too much in the log-softmax; the loss is computed in float32 at least.
        return F.cross_entropy(
            logits.reshape(-1, logits.size(-1)).to(torch.promote_types(logits.dtype, torch.float32)),
            targets.reshape(-1).long(),
            ignore_index=self.ignore_index,
            reduction="mean",
        )
