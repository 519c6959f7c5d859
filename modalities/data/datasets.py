"""Datasets: JSONL tokenized on access, fixed-length samples from a .pbin token stream, and random samples."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from modalities.data.errors import DataError
from modalities.data.jq_pattern import apply_jq_pattern, compile_jq_pattern
from modalities.data.pbin import PackedFile
from modalities.data.pbin_header import continuous_block_size, megatron_sample_starts, num_continuous_samples
from modalities.data.raw_index import default_index_path, read_raw_index
from modalities.data.tokenizers import TokenizerWrapper


class PackedMemMapDatasetContinuous(Dataset):
    """Samples of consecutive tokens of a .pbin file, ignoring document boundaries.

    With ``reuse_last_target`` a sample holds ``sequence_length + 1`` tokens and sample i starts at token
    ``i * sequence_length`` (neighbours share one token, so every token but the first is a target exactly once).
    Without, samples are disjoint blocks of exactly ``sequence_length`` tokens (so each trains on
    sequence_length - 1 targets), as in the reference: 20 tokens at sequence_length 2 give 10 samples.

    ``sequence_length`` below 2 is a ValueError, a file of fewer tokens than one sample a DataError. Sample i
    (negative i counted from the end, as in Python) is an int64 array; IndexError outside -len..len - 1.
    """

    def __init__(
        self, raw_data_path: str | os.PathLike, sequence_length: int, sample_key: str, reuse_last_target: bool = True
    ):
        if sequence_length < 2:
            raise ValueError(f"sequence_length must be at least 2, got {sequence_length}")
        self.raw_data_path = Path(raw_data_path)
        self.sample_key = sample_key
        self.sequence_length = sequence_length
        self.reuse_last_target = reuse_last_target
        self.packed = PackedFile(self.raw_data_path, load_index=False)
        self._block = continuous_block_size(sequence_length, reuse_last_target)
        self._stride = sequence_length if reuse_last_target else self._block
        self._num_samples = num_continuous_samples(self.packed.num_tokens, sequence_length, reuse_last_target)
        if self._num_samples == 0:
            raise DataError(
                f"{self.raw_data_path}: {self.packed.num_tokens} tokens are fewer than one sample of "
                f"{self._block} tokens; use a shorter sequence_length or more data"
            )

    def __len__(self) -> int:
        return self._num_samples

    def __getitem__(self, idx: int) -> dict[str, np.ndarray]:
        if not -self._num_samples <= idx < self._num_samples:
            raise IndexError(f"sample {idx} is out of range for {self._num_samples} samples of {self.raw_data_path}")
        start = (idx % self._num_samples) * self._stride
        return {self.sample_key: self.packed.tokens[start : start + self._block].astype(np.int64)}


class PackedMemMapDatasetMegatron(Dataset):
    """Samples of ``sequence_length + 1`` tokens aligned to documents where they fit (Megatron-style packing).

    The number of samples follows the reference exactly. Where a sample starts differs on purpose: the
    reference offsets every sample by the file's 12-byte header and reads block_size *bytes*, which misaligns
    tokens wider than one byte; here a sample is block_size tokens from a document start (see
    docs/compatibility.md).

    Samples start where :func:`megatron_sample_starts` says, those that would run past the last token left
    out (a file with no whole sample gives an empty dataset). Negative indices count from the end.
    """

    def __init__(self, raw_data_path: str | os.PathLike, sequence_length: int, sample_key: str):
        self.raw_data_path = Path(raw_data_path)
        self.sample_key = sample_key
        self.block_size = sequence_length + 1
        self.packed = PackedFile(self.raw_data_path, load_index=True)
        starts = megatron_sample_starts(self.packed.index // self.packed.token_width, self.block_size)
        # A sample that would run past the end of the token stream is left out.
        self._starts = np.array([s for s in starts if s + self.block_size <= self.packed.num_tokens], dtype=np.int64)

    def __len__(self) -> int:
        return len(self._starts)

    def __getitem__(self, idx: int) -> dict[str, np.ndarray]:
        start = int(self._starts[idx])
        return {self.sample_key: self.packed.tokens[start : start + self.block_size].astype(np.int64)}


class CombinedDataset(Dataset):
    """Several datasets one after another: index i runs through the first, then the second, ... (each sample
    comes whole from one dataset; a batch may mix them).

    ``len`` is the sum of the lengths (an empty dataset among them contributes nothing); negative indices count
    from the end; IndexError outside -len..len - 1; no datasets at all is a ValueError."""

    def __init__(self, datasets: list[Dataset]):
        if not datasets:
            raise ValueError("dataset/combined needs at least one dataset")
        self.datasets = list(datasets)
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets], dtype=np.int64)

    def __len__(self) -> int:
        return int(self.cumulative_sizes[-1])

    def __getitem__(self, idx: int):
        if not -len(self) <= idx < len(self):
            raise IndexError(f"sample {idx} is out of range for {len(self)} samples of the combined datasets")
        idx %= len(self)
        which = int(np.searchsorted(self.cumulative_sizes, idx, side="right"))
        offset = int(self.cumulative_sizes[which - 1]) if which else 0
        return self.datasets[which][idx - offset]


class MemMapDataset(Dataset):
    """One sample per JSONL document, read through the raw index and tokenized on access.

    Document i (negative i from the end) is ``{sample_key: tokenizer.tokenize(text)}`` where the jq pattern
    picks ``text``; IndexError outside -len..len - 1; DataError naming the file and document for a line that is
    not JSON, a missing field or a value that is not a string."""

    def __init__(
        self,
        raw_data_path: str | os.PathLike,
        tokenizer: TokenizerWrapper,
        sample_key: str,
        index_path: str | os.PathLike | None = None,
        jq_pattern: str = ".text",
    ):
        self.raw_data_path = Path(raw_data_path)
        self.index_path = Path(index_path) if index_path is not None else default_index_path(self.raw_data_path)
        self.index = read_raw_index(self.index_path, self.raw_data_path)
        self.tokenizer = tokenizer
        self.sample_key = sample_key
        self._jq_steps = compile_jq_pattern(jq_pattern)
        self._file = None

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self) -> dict:
        # Each loader worker opens its own file handle.
        return {**self.__dict__, "_file": None}

    def __getitem__(self, idx: int) -> dict[str, list[int]]:
        if not -len(self.index) <= idx < len(self.index):
            raise IndexError(f"document {idx} is out of range for {len(self.index)} documents of {self.raw_data_path}")
        if self._file is None:
            self._file = self.raw_data_path.open("rb")
        offset, length = (int(v) for v in self.index[idx])
        self._file.seek(offset)
        raw = self._file.read(length)
        try:
            text = apply_jq_pattern(self._jq_steps, json.loads(raw))
        except (ValueError, KeyError) as e:
            raise DataError(f"{self.raw_data_path}: document {idx} at byte {offset}: {e}") from None
        if not isinstance(text, str):
            raise DataError(
                f"{self.raw_data_path}: document {idx}: the jq pattern selects a value of type {type(text).__name__}, not a string"
            )
        return {self.sample_key: self.tokenizer.tokenize(text)}


class DummyDataset(Dataset):
    """Random arrays of the configured shapes; with a seed, sample i is reproducible (the same array on every
    call and in every process; another i or seed gives another). "float" samples are standard normal float64,
    others int64 in 0..511. Indices are 0..num_samples - 1 (no negative ones): IndexError otherwise."""

    def __init__(self, num_samples: int, sample_definition: list, seed: int | None = None):
        self.num_samples = num_samples
        self.sample_definition = [
            (d.sample_key, tuple(d.sample_shape), d.sample_type)
            if not isinstance(d, dict)
            else (d["sample_key"], tuple(d["sample_shape"]), d["sample_type"])
            for d in sample_definition
        ]
        self.seed = seed

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, idx: int) -> dict[str, np.ndarray]:
        if not 0 <= idx < self.num_samples:
            raise IndexError(f"sample {idx} is out of range for {self.num_samples} dummy samples")
        rng = np.random.default_rng(None if self.seed is None else (self.seed, idx))
        sample = {}
        for key, shape, kind in self.sample_definition:
            sample[key] = rng.standard_normal(shape) if kind == "float" else rng.integers(0, 512, size=shape)
        return sample
