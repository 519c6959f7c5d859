"""Batches image/text samples for CoCa; the text becomes next-token input and target."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from modalities.batch import DatasetBatch


class CoCaCollator:
    def __init__(self, sample_keys: list[str], target_keys: list[str], text_sample_key: str, text_target_key: str):
        if text_sample_key not in sample_keys:
            raise ValueError(f"text_sample_key '{text_sample_key}' must be one of sample_keys {sample_keys}")
        if text_target_key in target_keys:
            raise ValueError(f"text_target_key '{text_target_key}' must not be in target_keys {target_keys}")
        self.sample_keys = list(sample_keys)
        self.target_keys = list(target_keys)
        self.text_sample_key = text_sample_key
        self.text_target_key = text_target_key

    def __call__(self, batch: Sequence[Mapping[str, Any]]) -> DatasetBatch:
        if len(batch) == 0:
            raise ValueError("coca_collator received an empty batch")
        samples = {key: self._stack(batch, key) for key in self.sample_keys}
        targets = {key: self._stack(batch, key) for key in self.target_keys}
        text = samples[self.text_sample_key]
        if text.ndim != 2 or text.shape[1] < 2:
            raise ValueError(
                f"'{self.text_sample_key}' must be token ids of at least 2 tokens per sample, stacked to "
                f"(batch, tokens); got shape {tuple(text.shape)}"
            )
        samples[self.text_sample_key] = text[:, :-1].contiguous()
        targets[self.text_target_key] = text[:, 1:].contiguous()
        return DatasetBatch(samples=samples, targets=targets)

    @staticmethod
    def _stack(batch: Sequence[Mapping[str, Any]], key: str) -> torch.Tensor:
        tensors = []
        for index, sample in enumerate(batch):
            if key not in sample:
                raise KeyError(f"sample {index} of the batch has no key '{key}' (it has {sorted(sample)})")
            tensors.append(torch.as_tensor(sample[key]))
        shapes = {tuple(t.shape) for t in tensors}
        if len(shapes) > 1:
            raise ValueError(f"'{key}' has different shapes within one batch: {sorted(shapes)}; pad or resize them")
        return torch.stack(tensors)
