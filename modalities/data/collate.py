"""Collate functions: a list of samples -> modalities.batch.DatasetBatch."""

from __future__ import annotations

import numpy as np
import torch

from modalities.batch import DatasetBatch


class GPT2LLMCollateFn:
    """Stacks token samples of equal length; inputs are tokens[:, :-1], targets tokens[:, 1:]."""

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
