"""What a .pbin holds, in figures: document lengths and the samples it gives (`modalities data inspect`).

numpy only, no torch: inspecting a file must not wait on a deep-learning import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from modalities.data.pbin_header import megatron_sample_starts, num_continuous_samples


@dataclass(frozen=True)
class LengthStats:
    count: int
    min: int
    median: float
    mean: float
    p99: int  # nearest rank: the smallest length that at least 99% of documents do not exceed
    max: int


def length_stats(lengths: np.ndarray) -> LengthStats | None:
    """Statistics of document lengths in tokens; None for no documents. The median is numpy's (the mean of
    the middle two for an even count); p99 is the nearest rank, the ceil(0.99 n)-th smallest length (the
    largest for n up to 100)."""
    if len(lengths) == 0:
        return None
    ordered = np.sort(np.asarray(lengths, dtype=np.int64))
    rank = math.ceil(0.99 * len(ordered))
    return LengthStats(
        count=len(ordered),
        min=int(ordered[0]),
        median=float(np.median(ordered)),
        mean=float(ordered.mean()),
        p99=int(ordered[rank - 1]),
        max=int(ordered[-1]),
    )


def length_histogram(lengths: np.ndarray) -> list[tuple[int, int, int]]:
    """Documents per power-of-two length bin, as (lowest, highest, count) from the shortest bin that holds a
    document to the longest: 0, 1, 2-3, 4-7, 8-15, ... (empty bins between kept, so the shape reads right).
    [] for no documents; the counts add up to the number of lengths."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(lengths) == 0:
        return []
    # bin 0 holds length 0; bin k >= 1 holds 2**(k-1) .. 2**k - 1
    bins = np.zeros(len(lengths), dtype=np.int64)
    positive = lengths > 0
    bins[positive] = np.floor(np.log2(lengths[positive])).astype(np.int64) + 1
    counts = np.bincount(bins)
    rows = []
    for k in range(int(bins.min()), len(counts)):
        low, high = (0, 0) if k == 0 else (1 << (k - 1), (1 << k) - 1)
        rows.append((low, high, int(counts[k])))
    return rows


@dataclass(frozen=True)
class SampleCounts:
    sequence_length: int
    continuous: int  # packed_mem_map_dataset_continuous, reuse_last_target: true (sequence_length + 1 tokens)
    continuous_disjoint: int  # the same with reuse_last_target: false (blocks of sequence_length)
    megatron: int  # packed_mem_map_dataset_megatron


def sample_counts(num_tokens: int, documents: np.ndarray, sequence_length: int) -> SampleCounts:
    """Samples each packed dataset cuts from a file of ``num_tokens`` tokens whose documents are the
    (token offset, token length) rows ``documents``, at ``sequence_length``: the continuous dataset's with and
    without reuse_last_target (pbin_header.num_continuous_samples), and the Megatron dataset's (its starts
    whose block of sequence_length + 1 tokens lies within the file)."""
    block = sequence_length + 1
    megatron = sum(1 for start in megatron_sample_starts(documents, block) if start + block <= num_tokens)
    return SampleCounts(
        sequence_length,
        num_continuous_samples(num_tokens, sequence_length, True),
        num_continuous_samples(num_tokens, sequence_length, False),
        megatron,
    )
