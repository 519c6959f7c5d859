import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from modalities.batch import DatasetBatch, InferenceResultBatch
from modalities.models.coca.config import CoCaCollateFnConfig
from tests.multimodal.conftest import build

COLLATOR_CONFIG = {
    "sample_keys": ["images", "input_ids"],
    "target_keys": ["label"],
    "text_sample_key": "input_ids",
    "text_target_key": "target_ids",
}


def test_collator_stacks_and_shifts_text():
    collate = build("collate_fn", "coca_collator", COLLATOR_CONFIG)
    samples = [
        {"images": np.full((3, 2, 2), i, dtype=np.float32), "input_ids": [10 * i, 10 * i + 1, 10 * i + 2], "label": i}
        for i in range(4)
    ]
    batch = collate(samples)
    assert isinstance(batch, DatasetBatch)
    assert batch.samples["images"].shape == (4, 3, 2, 2) and batch.samples["images"][2].eq(2).all()
    assert batch.samples["input_ids"].tolist() == [[10 * i, 10 * i + 1] for i in range(4)]
    assert batch.targets["target_ids"].tolist() == [[10 * i + 1, 10 * i + 2] for i in range(4)]
    assert batch.targets["label"].tolist() == [0, 1, 2, 3]
    assert len(batch) == 4


def test_collator_config_checks_keys():
    with pytest.raises(ValidationError, match="must be one of sample_keys"):
        CoCaCollateFnConfig.model_validate(dict(COLLATOR_CONFIG, text_sample_key="text"))
    with pytest.raises(ValidationError, match="must not be in target_keys"):
        CoCaCollateFnConfig.model_validate(dict(COLLATOR_CONFIG, target_keys=["target_ids"]))


def test_collator_names_the_bad_sample():
    collate = build("collate_fn", "coca_collator", dict(COLLATOR_CONFIG, target_keys=[]))
    good = {"images": torch.zeros(3, 2, 2), "input_ids": torch.arange(3)}
    with pytest.raises(KeyError, match="sample 1 .* no key 'images'"):
        collate([good, {"input_ids": torch.arange(3)}])
    with pytest.raises(ValueError, match="different shapes"):
        collate([good, dict(good, input_ids=torch.arange(4))])


def _batch(image, text, logits=None, targets=None, **extra):
    predictions = {"vision_cls": image, "text_cls": text, **extra}
    if logits is not None:
        predictions["logits"] = logits
    return InferenceResultBatch(targets={"target_ids": targets} if targets is not None else {}, predictions=predictions)


def test_coca_loss_against_hand_computation():
    torch.manual_seed(0)
    image, text = torch.randn(4, 8), torch.randn(4, 8)
    logits, targets = torch.randn(4, 5, 11), torch.randint(0, 11, (4, 5))
    targets[0, :2] = -100
    loss_fn = build(
        "loss",
        "coca_loss",
        {"target_key": "target_ids", "vision_cls_prediction_key": "vision_cls", "text_cls_prediction_key": "text_cls",
         "temperature": 0.5, "contrastive_loss_weight": 0.3, "captioning_loss_weight": 1.7},
    )
    # By hand: cosine similarities / temperature, -log softmax of the diagonal, both directions averaged.
    cos = torch.tensor([[F.cosine_similarity(image[i], text[j], dim=0).item() for j in range(4)] for i in range(4)])
    sim = cos / 0.5
    image_to_text = -torch.stack([sim[i, i] - torch.logsumexp(sim[i], 0) for i in range(4)]).mean()
    text_to_image = -torch.stack([sim[i, i] - torch.logsumexp(sim[:, i], 0) for i in range(4)]).mean()
    contrastive = (image_to_text + text_to_image) / 2
    keep = targets != -100
    log_probs = logits.log_softmax(-1)
    captioning = -log_probs[keep].gather(1, targets[keep][:, None]).mean()
    expected = 0.3 * contrastive + 1.7 * captioning
    actual = loss_fn(_batch(image, text, logits, targets))
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    assert loss_fn.last_losses["contrastive"].item() == pytest.approx(contrastive.item(), rel=1e-5)


def test_coca_loss_uses_learned_logit_scale():
    image, text = torch.randn(3, 4), torch.randn(3, 4)
    logits, targets = torch.randn(3, 2, 7), torch.randint(0, 7, (3, 2))
    common = {"target_key": "target_ids", "vision_cls_prediction_key": "vision_cls",
              "text_cls_prediction_key": "text_cls", "captioning_loss_weight": 0.0}
    with_scale = build("loss", "coca_loss", dict(common, logit_scale_key="scale"))
    with_temperature = build("loss", "coca_loss", dict(common, temperature=0.25))
    torch.testing.assert_close(
        with_scale(_batch(image, text, logits, targets, scale=torch.tensor(4.0))),
        with_temperature(_batch(image, text, logits, targets)),
    )


def test_coca_loss_perfect_pairs_approach_zero():
    embeddings = torch.eye(4) * 5
    loss_fn = build(
        "loss", "coca_loss",
        {"target_key": "target_ids", "vision_cls_prediction_key": "vision_cls", "text_cls_prediction_key": "text_cls",
         "captioning_loss_weight": 0.0, "temperature": 0.01},
    )
    assert loss_fn(_batch(embeddings, embeddings, torch.zeros(4, 1, 3), torch.zeros(4, 1, dtype=torch.long))) < 1e-6


@pytest.mark.parametrize("is_asymmetric", [True, False])
def test_nce_loss_matches_modalities_formula(is_asymmetric):
    torch.manual_seed(1)
    first, second = torch.randn(5, 6), torch.randn(5, 6)
    loss_fn = build(
        "loss", "nce_loss",
        {"prediction_key1": "vision_cls", "prediction_key2": "text_cls", "is_asymmetric": is_asymmetric,
         "temperature": 2.0},
    )
    # Modalities' nce_loss, written out: log-space numerator (diagonal) and denominator(s).
    sim = first @ second.t() / 2.0
    numerator = torch.diagonal(sim)
    if is_asymmetric:
        expected = (torch.logsumexp(sim, dim=1) - numerator).mean()
    else:
        expected = (torch.logsumexp(sim, dim=1) + torch.logsumexp(sim.t(), dim=1) - 2 * numerator).mean()
    torch.testing.assert_close(loss_fn(_batch(first, second)), expected)
    assert math.isfinite(expected.item())


def test_loss_names_missing_prediction():
    loss_fn = build(
        "loss", "coca_loss",
        {"target_key": "target_ids", "vision_cls_prediction_key": "image_emb", "text_cls_prediction_key": "text_cls"},
    )
    with pytest.raises(KeyError, match="image_emb"):
        loss_fn(_batch(torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 2, 4), torch.zeros(2, 2, dtype=torch.long)))
