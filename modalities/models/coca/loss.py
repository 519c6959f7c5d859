"""CoCa's objective and Modalities' NCE loss, computed from an InferenceResultBatch."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from modalities.batch import InferenceResultBatch
from modalities.optim.loss import CLMCrossEntropyLoss


def info_nce(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, logit_scale: torch.Tensor | float):
    """Symmetric InfoNCE over a batch of matching pairs: pair i is the positive, every other pair a negative."""
    image = F.normalize(image_embeddings.float(), dim=-1)
    text = F.normalize(text_embeddings.float(), dim=-1)
    logits = logit_scale * image @ text.t()
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


class CoCaLoss:
    """contrastive_loss_weight * InfoNCE(image, text) + captioning_loss_weight * next-token cross-entropy.

    The parts of the last call are kept in ``last_losses`` (detached tensors, so no device sync here) for logging.
    """

    def __init__(
        self,
        target_key: str,
        vision_cls_prediction_key: str,
        text_cls_prediction_key: str,
        prediction_key: str = "logits",
        logit_scale_key: str | None = None,
        temperature: float = 0.07,
        contrastive_loss_weight: float = 1.0,
        captioning_loss_weight: float = 2.0,
        ignore_index: int = -100,
        tag: str = "CoCaLoss",
    ):
        self.vision_cls_prediction_key = vision_cls_prediction_key
        self.text_cls_prediction_key = text_cls_prediction_key
        self.logit_scale_key = logit_scale_key
        self.temperature = temperature
        self.contrastive_loss_weight = contrastive_loss_weight
        self.captioning_loss_weight = captioning_loss_weight
        self.tag = tag
        self.last_losses: dict[str, torch.Tensor] = {}
        # The captioning term is plain next-token cross-entropy: the language-model loss computes it.
        self._captioning_loss = CLMCrossEntropyLoss(target_key, prediction_key, ignore_index=ignore_index, tag=tag)

    def __call__(self, batch: InferenceResultBatch) -> torch.Tensor:
        captioning = self._captioning_loss(batch)
        if self.logit_scale_key is None:
            scale: torch.Tensor | float = 1.0 / self.temperature
        else:
            scale = batch.get_predictions(self.logit_scale_key)
        contrastive = info_nce(
            batch.get_predictions(self.vision_cls_prediction_key).flatten(1),
            batch.get_predictions(self.text_cls_prediction_key).flatten(1),
            scale,
        )
        self.last_losses = {"contrastive": contrastive.detach(), "captioning": captioning.detach()}
        return self.contrastive_loss_weight * contrastive + self.captioning_loss_weight * captioning


class NCELoss:
    """InfoNCE between two embeddings as Modalities' NCELoss computes it (optionally one direction only)."""

    def __init__(
        self,
        prediction_key1: str,
        prediction_key2: str,
        is_asymmetric: bool = True,
        temperature: float = 1.0,
        tag: str = "NCELoss",
        normalize: bool = False,
    ):
        self.prediction_key1 = prediction_key1
        self.prediction_key2 = prediction_key2
        self.is_asymmetric = is_asymmetric
        self.temperature = temperature
        self.tag = tag
        self.normalize = normalize

    def __call__(self, batch: InferenceResultBatch) -> torch.Tensor:
        first = batch.get_predictions(self.prediction_key1).flatten(1).float()
        second = batch.get_predictions(self.prediction_key2).flatten(1).float()
        if self.normalize:
            first, second = F.normalize(first, dim=-1), F.normalize(second, dim=-1)
        logits = first @ second.t() / self.temperature
        labels = torch.arange(logits.shape[0], device=logits.device)
        loss = F.cross_entropy(logits, labels)
        if self.is_asymmetric:
            return loss
        # Modalities sums both directions (it does not average them).
        return loss + F.cross_entropy(logits.t(), labels)
