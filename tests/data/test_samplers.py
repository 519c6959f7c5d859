"""Distributed sampling: coverage per epoch, agreement with torch, determinism and resuming."""

import pytest
from torch.utils.data import DistributedSampler

from modalities.data.samplers import ResumableDistributedSampler, distributed_sampler


class Sized:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


@pytest.mark.parametrize("num_replicas", [2, 4])
@pytest.mark.parametrize("shuffle", [False, True])
def test_every_sample_once_per_epoch(num_replicas, shuffle):
    dataset = Sized(40)
    for epoch in range(3):
        seen = []
        for rank in range(num_replicas):
            sampler = ResumableDistributedSampler(dataset, rank, num_replicas, shuffle=shuffle, seed=7)
            sampler.set_epoch(epoch)
            seen += list(sampler)
            assert len(list(sampler)) == len(sampler) == 40 // num_replicas
        assert sorted(seen) == list(range(40))


@pytest.mark.parametrize("n, drop_last", [(41, True), (41, False), (40, True)])
def test_matches_torch_distributed_sampler(n, drop_last):
    for rank in range(4):
        ours = distributed_sampler(Sized(n), rank=rank, num_replicas=4, shuffle=True, seed=3, drop_last=drop_last)
        torch_sampler = DistributedSampler(
            Sized(n), num_replicas=4, rank=rank, shuffle=True, seed=3, drop_last=drop_last
        )
        for epoch in (0, 5):
            ours.set_epoch(epoch)
            torch_sampler.set_epoch(epoch)
            assert list(ours) == list(torch_sampler)


def test_shuffle_depends_on_seed_and_epoch():
    a = ResumableDistributedSampler(Sized(50), 0, 2, shuffle=True, seed=1)
    b = ResumableDistributedSampler(Sized(50), 0, 2, shuffle=True, seed=2)
    first = list(a)
    assert first == list(ResumableDistributedSampler(Sized(50), 0, 2, shuffle=True, seed=1))
    assert first != list(b)
    a.set_epoch(1)
    assert list(a) != first


@pytest.mark.parametrize("num_replicas", [2, 4])
def test_resume_after_k_samples_continues_the_same_order(num_replicas):
    dataset = Sized(43)
    k = 3 * num_replicas * 2  # e.g. 3 steps of micro-batch 2 on every rank
    for rank in range(num_replicas):
        full = list(ResumableDistributedSampler(dataset, rank, num_replicas, epoch=2, shuffle=True, seed=9))
        resumed = ResumableDistributedSampler(
            dataset, rank, num_replicas, epoch=2, shuffle=True, seed=9, skip_num_global_samples=k
        )
        assert list(resumed) == full[k // num_replicas :]
        assert len(resumed) == len(full) - k // num_replicas
        resumed.set_epoch(3)  # the skip belongs to the starting epoch only
        assert len(list(resumed)) == 43 // num_replicas


def test_invalid_arguments():
    with pytest.raises(ValueError, match="rank 2"):
        ResumableDistributedSampler(Sized(4), rank=2, num_replicas=2)
    with pytest.raises(ValueError, match="exceeds"):
        ResumableDistributedSampler(Sized(4), rank=0, num_replicas=2, skip_num_global_samples=5)


@pytest.mark.parametrize("n, num_replicas", [(2, 5), (1, 4), (3, 8)])
def test_padding_beyond_the_dataset_repeats_it_as_torch_does(n, num_replicas):
    # fewer samples than ranks: the order is repeated more than once to give every rank one
    for rank in range(num_replicas):
        ours = distributed_sampler(Sized(n), rank=rank, num_replicas=num_replicas, shuffle=False, drop_last=False)
        theirs = DistributedSampler(Sized(n), num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        assert list(ours) == list(theirs) == [rank % n]


class _Mesh:
    """The parts of a DeviceMesh the multi-dim sampler reads: dp_shard of size 3, this rank at coordinate 2."""

    mesh_dim_names = ("dp_shard", "tp")

    def size(self, dim: int) -> int:
        return (3, 2)[dim]

    def get_local_rank(self, name: str) -> int:
        return {"dp_shard": 2, "tp": 1}[name]


def test_the_multi_dim_sampler_reads_the_data_parallel_coordinate():
    from modalities.data.samplers import resumable_distributed_multi_dim_sampler

    sampler = resumable_distributed_multi_dim_sampler(Sized(12), _Mesh(), shuffle=False, skip_num_global_samples=3)
    assert (sampler.rank, sampler.num_replicas) == (2, 3)
    assert list(sampler) == [5, 8, 11]  # samples 3.. dealt to 3 ranks, this one third: 3+2, 3+2+3, ...
    with pytest.raises(ValueError, match=r"the device mesh has no dimension 'dp_replicate' \(it has \('dp_shard', 'tp'\)\)"):
        resumable_distributed_multi_dim_sampler(Sized(12), _Mesh(), data_parallel_key="dp_replicate")
