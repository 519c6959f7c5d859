import math

import pytest
import torch

from modalities.batch import InferenceResultBatch
from modalities.optim.config import CLMCrossEntropyLossConfig
from modalities.optim.loss import CLMCrossEntropyLoss


def _build(**fields) -> CLMCrossEntropyLoss:
    config = CLMCrossEntropyLossConfig(target_key="target_ids", prediction_key="logits", **fields)
    return CLMCrossEntropyLoss(**dict(config))


def _hand_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, ignore: int) -> float:
    """Mean of -log softmax(logits)[target] over the kept tokens, written out token by token."""
    total, count = 0.0, 0
    for b in range(targets.shape[0]):
        for t in range(targets.shape[1]):
            target = int(targets[b, t])
            if target == ignore:
                continue
            row = logits[b, t].double()
            total += -(row[target] - torch.logsumexp(row, dim=0)).item()
            count += 1
    return total / count


def test_mean_token_cross_entropy_matches_hand_computation():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 7)
    targets = torch.randint(0, 7, (2, 4))
    loss = _build()(InferenceResultBatch(targets={"target_ids": targets}, predictions={"logits": logits}))
    assert loss.ndim == 0
    assert loss.item() == pytest.approx(_hand_cross_entropy(logits, targets, -100), rel=1e-5)


def test_default_ignore_index_leaves_out_tokens():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 7)
    targets = torch.randint(0, 7, (2, 4))
    targets[0, 1] = -100
    targets[1, 3] = -100
    loss = _build()(InferenceResultBatch(targets={"target_ids": targets}, predictions={"logits": logits}))
    assert loss.item() == pytest.approx(_hand_cross_entropy(logits, targets, -100), rel=1e-5)


def test_configured_ignore_index():
    torch.manual_seed(0)
    logits = torch.randn(1, 6, 5)
    targets = torch.tensor([[0, 1, 2, 3, 4, 0]])
    loss = _build(ignore_index=0)(InferenceResultBatch(targets={"target_ids": targets}, predictions={"logits": logits}))
    assert loss.item() == pytest.approx(_hand_cross_entropy(logits, targets, 0), rel=1e-5)


def test_attention_mask_in_targets_masks_tokens_without_mutating_targets():
    torch.manual_seed(0)
    logits = torch.randn(1, 4, 5)
    targets = torch.tensor([[1, 2, 3, 4]])
    mask = torch.tensor([[1, 1, 0, 0]])
    targets_with_mask = {"target_ids": targets, "attention_mask": mask}
    batch = InferenceResultBatch(targets=targets_with_mask, predictions={"logits": logits})
    loss = _build()(batch)
    assert loss.item() == pytest.approx(_hand_cross_entropy(logits[:, :2], targets[:, :2], -100), rel=1e-5)
    assert targets.tolist() == [[1, 2, 3, 4]]


def test_uniform_logits_give_log_vocab():
    logits = torch.zeros(3, 5, 11)
    targets = torch.randint(0, 11, (3, 5))
    loss = _build()(InferenceResultBatch(targets={"target_ids": targets}, predictions={"logits": logits}))
    assert loss.item() == pytest.approx(math.log(11), rel=1e-6)


def test_shape_mismatch_names_both_keys():
    batch = InferenceResultBatch(targets={"target_ids": torch.zeros(2, 3, dtype=torch.long)},
                                 predictions={"logits": torch.zeros(2, 4, 5)})
    with pytest.raises(ValueError, match="'logits'.*'target_ids'"):
        _build()(batch)


def test_config_requires_keys_and_rejects_unknown_fields():
    with pytest.raises(Exception, match="prediction_key"):
        CLMCrossEntropyLossConfig(target_key="t")
    with pytest.raises(Exception, match="ignore_idx"):
        CLMCrossEntropyLossConfig(target_key="t", prediction_key="p", ignore_idx=3)


def test_bfloat16_logits_are_reduced_in_float32():
    torch.manual_seed(0)
    logits = (torch.randn(2, 8, 50) * 4).bfloat16()
    targets = torch.randint(0, 50, (2, 8))
    loss = _build()(InferenceResultBatch(targets={"target_ids": targets}, predictions={"logits": logits}))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(_hand_cross_entropy(logits.float(), targets, -100), rel=1e-6)
