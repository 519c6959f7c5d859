"""Distributed sampling that is deterministic in (seed, epoch) and can start mid-epoch."""

from __future__ import annotations

from collections.abc import Iterator, Sized

import torch
from torch.utils.data import BatchSampler, Sampler


class ResumableDistributedSampler(Sampler[int]):
    """This rank's share of a global order of the dataset's indices.

    The global order is ``torch.randperm(len(dataset))`` seeded with ``seed + epoch`` (or 0..n-1 unshuffled),
    the same on every rank. In the starting epoch the first ``skip_num_global_samples`` entries are skipped
    (they were consumed before a restart); the rest is trimmed (``drop_last``) or padded to a multiple of
    ``num_replicas`` and dealt round-robin: rank r takes entries r, r + R, r + 2R, ... With no skip this is
    exactly torch's ``DistributedSampler``; with a skip of k (a multiple of R) each rank continues where its
    sequence stopped after k global samples.

    Contract, for n = len(dataset), R = num_replicas and k the skip of the epoch (k in the starting epoch, 0 in
    any other; ``set_epoch`` back to the starting epoch skips again):

    - ``0 <= rank < R`` and ``0 <= skip_num_global_samples <= n``, else ValueError (a skip of exactly n leaves
      nothing: every rank's sequence is empty in the starting epoch);
    - ``len(sampler)`` is ``(n - k) // R`` with ``drop_last``, ``ceil((n - k) / R)`` without, and always equals
      the number of indices iterated;
    - without ``drop_last`` the n - k remaining entries are padded by repeating them from their start (several
      times over when fewer remain than ranks), so rank r of 5 entries [a, b, c, d, e] on 2 ranks gets
      [a, c, e] / [b, d, a]; with ``drop_last`` the last (n - k) % R entries are left out: [a, c] / [b, d];
    - with no remaining entry (n == k, or n == 0) every rank gets nothing, with either flag.
    """

    def __init__(
        self,
        dataset: Sized,
        rank: int,
        num_replicas: int,
        epoch: int = 0,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = True,
        skip_num_global_samples: int = 0,
    ):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} must be in [0, {num_replicas})")
        if skip_num_global_samples < 0:
            raise ValueError(f"skip_num_global_samples ({skip_num_global_samples}) must not be negative")
        if skip_num_global_samples > len(dataset):
            raise ValueError(
                f"skip_num_global_samples ({skip_num_global_samples}) exceeds the dataset's {len(dataset)} samples"
            )
        self.dataset = dataset
        self.rank = rank
        self.num_replicas = num_replicas
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = epoch
        self.start_epoch = epoch
        self.skip_num_global_samples = skip_num_global_samples

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order the next iteration deals (its shuffle is seeded with seed + epoch)."""
        self.epoch = epoch

    def _skip(self) -> int:
        return self.skip_num_global_samples if self.epoch == self.start_epoch else 0

    def __len__(self) -> int:
        remaining = len(self.dataset) - self._skip()
        if self.drop_last:
            return remaining // self.num_replicas
        return -(-remaining // self.num_replicas)  # noqa: PLE0303

    def global_order(self) -> list[int]:
        """All n indices of this epoch in the order the ranks consume them, before skipping, padding or trimming:
        ``torch.randperm(n)`` seeded with seed + epoch when shuffling, else 0, 1, ..., n - 1 ([] for n == 0)."""
        n = len(self.dataset)
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed + self.epoch)
            return torch.randperm(n, generator=generator).tolist()
        return list(range(n))

    def __iter__(self) -> Iterator[int]:
        indices = self.global_order()[self._skip() :]
        total = len(self) * self.num_replicas
        if total > len(indices):  # pad by repeating from the start, as torch does
            repeats = -(-(total - len(indices)) // max(len(indices), 1))
            indices = indices + (indices * repeats)[: total - len(indices)]
        return iter(indices[self.rank : total : self.num_replicas])


def distributed_sampler(
    dataset: Sized, rank: int, num_replicas: int, shuffle: bool, seed: int = 0, drop_last: bool = True
) -> ResumableDistributedSampler:
    """torch's DistributedSampler order, given rank and world size explicitly (no process group needed): the
    same indices and length as ``DistributedSampler(dataset, num_replicas, rank, shuffle, seed, drop_last)`` in
    every epoch; a ResumableDistributedSampler that starts at epoch 0 and skips nothing."""
    return ResumableDistributedSampler(
        dataset=dataset, rank=rank, num_replicas=num_replicas, shuffle=shuffle, seed=seed, drop_last=drop_last
    )


def batch_sampler(sampler: Sampler, batch_size: int, drop_last: bool = True) -> BatchSampler:
    """torch's BatchSampler: the sampler's indices in consecutive lists of ``batch_size``; the last, shorter list
    is kept unless ``drop_last`` (so 5 indices in batches of 2 give 2 batches with it, 3 without)."""
    return BatchSampler(sampler, batch_size=batch_size, drop_last=drop_last)


def resumable_distributed_multi_dim_sampler(
    dataset: Sized,
    device_mesh,
    data_parallel_key: str = "dp_shard",
    epoch: int = 0,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = True,
    skip_num_global_samples: int = 0,
) -> ResumableDistributedSampler:
    """Builder of ``sampler/resumable_distributed_multi_dim_sampler``: rank and replicas from the mesh's
    data-parallel dimension.

    ``data_parallel_key`` names one dimension of the mesh (rank = this process's coordinate on it, replicas = its
    size), or is ``"dp"``: the coordinate over dp_replicate x dp_shard, numbered row-major (rank = replicate
    coordinate x dp_shard size + shard coordinate), either dimension left out when the mesh lacks it. A key
    the mesh has no dimension for (or "dp" on a mesh with neither) is a ValueError naming the mesh's dimensions.
    Tensor/context/pipeline-parallel coordinates do not change the rank: those ranks read the same samples."""
    names = device_mesh.mesh_dim_names or ()
    # "dp": the coordinate over dp_replicate x dp_shard (row-major, as torchtitan's flattened "dp" numbers it)
    dims = [name for name in ("dp_replicate", "dp_shard") if name in names] if data_parallel_key == "dp" \
        else [data_parallel_key]
    if not dims or any(name not in names for name in dims):
        raise ValueError(f"the device mesh has no dimension {data_parallel_key!r} (it has {names})")
    rank, num_replicas = 0, 1
    for name in dims:
        size = device_mesh.size(names.index(name))
        rank, num_replicas = rank * size + device_mesh.get_local_rank(name), num_replicas * size
    return ResumableDistributedSampler(
        dataset,
        rank=rank,
        num_replicas=num_replicas,
        epoch=epoch,
        shuffle=shuffle,
        seed=seed,
        drop_last=drop_last,
        skip_num_global_samples=skip_num_global_samples,
    )
