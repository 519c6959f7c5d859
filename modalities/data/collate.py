"""Collate functions: a list of samples -> modalities.batch.DatasetBatch."""

from __future__ import annotations

import numpy as np
import torch

from modalities.batch import DatasetBatch


class GPT2LLMCollateFn:
    """Stacks token samples of equal length; inputs are tokens[:, :-1], targets tokens[:, 1:] (int64).

    A batch of B samples of L tokens gives [B, L - 1] inputs under ``sample_key`` and [B, L - 1] targets under
    ``target_key``. KeyError naming the keys the samples have when ``sample_key`` is not one; ValueError when
    the samples differ in length."""

    def __init__(self, sample_key: str, target_key: str):
        self.sample_key = sample_key
        self.target_key = target_key

    def __call__(self, batch: list[dict]) -> DatasetBatch:
        try:
            tokens = np.stack([np.asarray(sample[self.sample_key]) for sample in batch])
            tokens = torch.from_numpy(tokens.astype(np.int64, copy=False))
        except KeyError:
            raise KeyError(
                f"collate_fn: the samples have no key '{self.sample_key}' (they have {sorted(batch[0])}); "
                "sample_key must match the dataset's"
            ) from None
        except ValueError as e:
            raise ValueError(
                f"collate_fn: samples under '{self.sample_key}' differ in length ({e}); use a packed dataset"
            ) from None
        return DatasetBatch(samples={self.sample_key: tokens[:, :-1]}, targets={self.target_key: tokens[:, 1:]})


class LossMaskingCollateFnWrapper:
    """Instruction tuning: targets outside ``[begin, end)`` marker pairs are set to ``loss_ignore_index``.

    The wrapped collator builds the batch; then, in each target key, only the tokens strictly between a begin
    marker and the following end marker are trained on (the markers themselves are not). A batch in which the
    begin or the end marker is missing is left out of the loss entirely, with a warning (the reference's rule).
    """

    def __init__(self, wrapped_collate_fn, target_keys_to_mask: list[str], loss_ignore_index: int, mask_tokens, tokenizer):
        self.wrapped_collate_fn = wrapped_collate_fn
        self.target_keys_to_mask = list(target_keys_to_mask)
        self.loss_ignore_index = loss_ignore_index
        begin = getattr(mask_tokens, "b_include_to_loss_token", None) or mask_tokens["b_include_to_loss_token"]
        end = getattr(mask_tokens, "e_include_to_loss_token", None) or mask_tokens["e_include_to_loss_token"]
        self.begin_id = tokenizer.get_token_id(begin)
        self.end_id = tokenizer.get_token_id(end)
        if self.begin_id == self.end_id:
            raise ValueError(
                f"mask_tokens: the begin ({begin!r}) and end ({end!r}) markers are the same token {self.begin_id}"
            )

    def __call__(self, batch: list[dict]) -> DatasetBatch:
        dataset_batch = self.wrapped_collate_fn(batch)
        for key in self.target_keys_to_mask:
            if key not in dataset_batch.targets:
                raise KeyError(f"target_keys_to_mask: the batch has no target '{key}' (it has {sorted(dataset_batch.targets)})")
            dataset_batch.targets[key] = mask_outside_markers(
                dataset_batch.targets[key], self.begin_id, self.end_id, self.loss_ignore_index
            )
        return dataset_batch


def mask_outside_markers(target: torch.Tensor, begin_id: int, end_id: int, ignore_index: int) -> torch.Tensor:
    """``target`` [B, T] with every position not strictly inside a begin..end marker pair set to ignore_index.

    The pairs are read along each row of the batch: a begin marker opens at the next position, the end marker
    closes at its own (so neither marker is kept), and a pair still open at the row's end keeps the rest of the
    row. A batch without any begin or any end marker is all ignore_index, with a warning. An end marker before
    its begin, or two begins in a row, is a ValueError."""
    import warnings

    if not (target == begin_id).any() or not (target == end_id).any():
        which = "begin" if not (target == begin_id).any() else "end"
        warnings.warn(
            f"loss masking: no {which} marker (token {begin_id if which == 'begin' else end_id}) in this batch's "
            "targets, so the whole batch is left out of the loss; check how the tokenizer splits the markers "
            "(' <m>' and '<m>' are different tokens) and that a turn fits the sequence length",
            stacklevel=2,
        )
        return torch.full_like(target, ignore_index)
    # +1 right after a begin marker, -1 at an end marker: the running sum is 1 exactly inside a pair.
    boundaries = torch.zeros_like(target)
    boundaries[:, 1:] += (target == begin_id)[:, :-1].to(target.dtype)
    boundaries -= (target == end_id).to(target.dtype)
    inside = boundaries.cumsum(-1)
    if (inside < 0).any() or (inside > 1).any():
        raise ValueError(
            "loss masking: an end marker comes before its begin marker, or two begin markers follow each other; "
            "markers must alternate begin, end, begin, ... (pad and truncate conversations so they do)"
        )
    return torch.where(inside.bool(), target, torch.full_like(target, ignore_index))
