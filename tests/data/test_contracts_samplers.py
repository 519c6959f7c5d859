"""The samplers' contracts: tables of boundary cases worked out by hand, and torch's own DistributedSampler
compared on drawn inputs (every combination of replicas, rank, shuffle, drop_last, seed, epoch and skip)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DistributedSampler

from modalities.data.samplers import (
    ResumableDistributedSampler,
    batch_sampler,
    distributed_sampler,
    resumable_distributed_multi_dim_sampler,
)


class Sized:
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n


# (n, num_replicas, skip, drop_last) -> what each rank gets, unshuffled (the entries are the dataset's positions)
SAMPLER_TABLE = [
    # empty dataset: nothing, whatever the flag
    (0, 1, 0, True, [[]]),
    (0, 2, 0, False, [[], []]),
    # one sample, one rank
    (1, 1, 0, True, [[0]]),
    (1, 1, 0, False, [[0]]),
    # one sample, two ranks: dropped, or repeated for the second rank
    (1, 2, 0, True, [[], []]),
    (1, 2, 0, False, [[0], [0]]),
    # one sample, three ranks: the order is repeated more than once
    (1, 3, 0, False, [[0], [0], [0]]),
    (2, 5, 0, False, [[0], [1], [0], [1], [0]]),
    # exactly divisible: both flags agree
    (4, 2, 0, True, [[0, 2], [1, 3]]),
    (4, 2, 0, False, [[0, 2], [1, 3]]),
    (6, 3, 0, True, [[0, 3], [1, 4], [2, 5]]),
    # one more than divisible: the last entry dropped, or the first repeated to pad
    (5, 2, 0, True, [[0, 2], [1, 3]]),
    (5, 2, 0, False, [[0, 2, 4], [1, 3, 0]]),
    # one less than divisible
    (5, 3, 0, True, [[0], [1], [2]]),
    (5, 3, 0, False, [[0, 3], [1, 4], [2, 0]]),
    # a skip: the remaining entries are dealt, padded or trimmed, as a dataset of their own
    (5, 2, 2, True, [[2], [3]]),
    (5, 2, 2, False, [[2, 4], [3, 2]]),
    (8, 2, 4, True, [[4, 6], [5, 7]]),
    (8, 2, 4, False, [[4, 6], [5, 7]]),
    (8, 2, 1, False, [[1, 3, 5, 7], [2, 4, 6, 1]]),
    # a skip of the first entry only
    (3, 1, 1, True, [[1, 2]]),
    # a skip of all but the last entry
    (4, 2, 3, True, [[], []]),
    (4, 2, 3, False, [[3], [3]]),
    # a skip of exactly the dataset: nothing left, with either flag
    (4, 2, 4, True, [[], []]),
    (4, 2, 4, False, [[], []]),
    (4, 1, 4, False, [[]]),
]


@pytest.mark.parametrize("n, num_replicas, skip, drop_last, per_rank", SAMPLER_TABLE)
def test_each_rank_gets_the_entries_worked_out_by_hand(n, num_replicas, skip, drop_last, per_rank):
    for rank, expected in enumerate(per_rank):
        sampler = ResumableDistributedSampler(
            Sized(n), rank, num_replicas, shuffle=False, drop_last=drop_last, skip_num_global_samples=skip
        )
        assert list(sampler) == expected
        assert len(sampler) == len(expected)


@pytest.mark.parametrize("drop_last", [True, False])
def test_the_skip_belongs_to_the_starting_epoch(drop_last):
    sampler = ResumableDistributedSampler(Sized(5), 1, 2, epoch=3, drop_last=drop_last, skip_num_global_samples=2)
    assert sampler.epoch == sampler.start_epoch == 3
    skipped = [3] if drop_last else [3, 2]  # entries 2, 3, 4 dealt to two ranks; rank 1 takes the second
    whole = [1, 3] if drop_last else [1, 3, 0]
    assert (list(sampler), len(sampler)) == (skipped, len(skipped))
    sampler.set_epoch(4)  # a later epoch starts at its first sample
    assert (list(sampler), len(sampler)) == (whole, len(whole))
    sampler.set_epoch(2)  # an earlier one too
    assert list(sampler) == whole
    sampler.set_epoch(3)  # back in the starting epoch, the skip applies again
    assert list(sampler) == skipped


@pytest.mark.parametrize(
    "n, rank, num_replicas, skip, message",
    [
        (4, 2, 2, 0, r"rank 2 must be in \[0, 2\)"),  # rank equal to the replicas: one past the last
        (4, -1, 2, 0, r"rank -1 must be in \[0, 2\)"),
        (4, 0, 0, 0, r"rank 0 must be in \[0, 0\)"),  # no replicas at all
        (4, 0, 2, 5, r"skip_num_global_samples \(5\) exceeds the dataset's 4 samples"),  # one past the length
        (0, 0, 1, 1, r"skip_num_global_samples \(1\) exceeds the dataset's 0 samples"),
        (4, 0, 2, -1, r"skip_num_global_samples \(-1\) must not be negative"),
    ],
)
def test_arguments_outside_the_contract_are_refused(n, rank, num_replicas, skip, message):
    with pytest.raises(ValueError, match=message):
        ResumableDistributedSampler(Sized(n), rank, num_replicas, skip_num_global_samples=skip)


@pytest.mark.parametrize("rank", [0, 3])  # the first and the last rank are valid
def test_the_first_and_the_last_rank_are_accepted(rank):
    assert ResumableDistributedSampler(Sized(8), rank, 4).rank == rank


@pytest.mark.parametrize("shuffle", [False, True])
def test_the_global_order_is_a_permutation_seeded_by_seed_plus_epoch(shuffle):
    import torch

    sampler = ResumableDistributedSampler(Sized(9), 0, 3, epoch=2, shuffle=shuffle, seed=5)
    if shuffle:
        generator = torch.Generator()
        generator.manual_seed(7)  # seed 5 + epoch 2
        assert sampler.global_order() == torch.randperm(9, generator=generator).tolist()
        other_epoch = ResumableDistributedSampler(Sized(9), 0, 3, epoch=1, shuffle=True, seed=6)
        assert other_epoch.global_order() == sampler.global_order()  # 6 + 1 == 5 + 2: the same permutation
    else:
        assert sampler.global_order() == list(range(9))
    assert ResumableDistributedSampler(Sized(0), 0, 1, shuffle=shuffle).global_order() == []


@pytest.mark.parametrize(
    "drop_last, expected", [(True, [[0, 1], [2, 3]]), (False, [[0, 1], [2, 3], [4]])]
)
def test_batch_sampler_keeps_the_short_last_batch_unless_drop_last(drop_last, expected):
    batches = batch_sampler(ResumableDistributedSampler(Sized(5), 0, 1), batch_size=2, drop_last=drop_last)
    assert list(batches) == expected and len(batches) == len(expected)
    exact = batch_sampler(ResumableDistributedSampler(Sized(4), 0, 1), batch_size=2, drop_last=drop_last)
    assert list(exact) == [[0, 1], [2, 3]]  # divisible: both flags agree
    one = batch_sampler(ResumableDistributedSampler(Sized(1), 0, 1), 2, drop_last)
    assert list(one) == ([] if drop_last else [[0]])


def test_batch_sampler_drops_the_short_batch_by_default():
    assert list(batch_sampler(ResumableDistributedSampler(Sized(3), 0, 1), batch_size=2)) == [[0, 1]]


def test_distributed_sampler_starts_at_epoch_0_without_a_skip():
    sampler = distributed_sampler(Sized(6), rank=1, num_replicas=2, shuffle=False)
    assert (sampler.epoch, sampler.start_epoch, sampler.skip_num_global_samples, sampler.seed) == (0, 0, 0, 0)
    assert sampler.drop_last is True and list(sampler) == [1, 3, 5]
    assert list(distributed_sampler(Sized(5), 1, 2, False, drop_last=False)) == [1, 3, 0]


# --- torch's DistributedSampler, on drawn inputs ------------------------------------------------------------------


def _torch_global_order(n: int, shuffle: bool, seed: int, epoch: int) -> list[int]:
    """torch's own permutation of an epoch: its sampler on one replica deals every index, unpadded, in order."""
    whole = DistributedSampler(Sized(n), num_replicas=1, rank=0, shuffle=shuffle, seed=seed, drop_last=False)
    whole.set_epoch(epoch)
    return list(whole)


@st.composite
def sampler_arguments(draw):
    num_replicas = draw(st.integers(1, 6))
    n = draw(st.integers(0, 30))
    return {
        "n": n,
        "num_replicas": num_replicas,
        "rank": draw(st.integers(0, num_replicas - 1)),
        "shuffle": draw(st.booleans()),
        "drop_last": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**31)),
        "epoch": draw(st.integers(0, 5)),
        "skip": draw(st.integers(0, n)),
    }


@settings(max_examples=300)
@given(sampler_arguments())
def test_without_a_skip_the_indices_and_length_are_torchs(a):
    ours = distributed_sampler(Sized(a["n"]), a["rank"], a["num_replicas"], a["shuffle"], a["seed"], a["drop_last"])
    theirs = DistributedSampler(Sized(a["n"]), num_replicas=a["num_replicas"], rank=a["rank"], shuffle=a["shuffle"],
                                seed=a["seed"], drop_last=a["drop_last"])
    for epoch in (0, a["epoch"]):
        ours.set_epoch(epoch)
        theirs.set_epoch(epoch)
        assert list(ours) == list(theirs)
        assert len(ours) == len(theirs)


@settings(max_examples=300)
@given(sampler_arguments())
def test_with_a_skip_the_rest_of_the_epoch_is_dealt_as_torch_deals_a_dataset_of_its_own(a):
    """The entries left after k of torch's permutation, dealt by torch's (unshuffled) sampler as a dataset of
    n - k samples: padding, trimming and the rank's share all come from torch."""
    sampler = ResumableDistributedSampler(
        Sized(a["n"]), a["rank"], a["num_replicas"], epoch=a["epoch"], shuffle=a["shuffle"], seed=a["seed"],
        drop_last=a["drop_last"], skip_num_global_samples=a["skip"],
    )
    rest = _torch_global_order(a["n"], a["shuffle"], a["seed"], a["epoch"])[a["skip"] :]
    dealer = DistributedSampler(Sized(len(rest)), num_replicas=a["num_replicas"], rank=a["rank"], shuffle=False,
                                drop_last=a["drop_last"])
    expected = [rest[i] for i in dealer]
    assert list(sampler) == expected
    assert len(sampler) == len(expected)
    # the next epoch is torch's, whole
    sampler.set_epoch(a["epoch"] + 1)
    theirs = DistributedSampler(Sized(a["n"]), num_replicas=a["num_replicas"], rank=a["rank"], shuffle=a["shuffle"],
                                seed=a["seed"], drop_last=a["drop_last"])
    theirs.set_epoch(a["epoch"] + 1)
    assert list(sampler) == list(theirs) and len(sampler) == len(theirs)


@settings(max_examples=100)
@given(sampler_arguments())
def test_a_skip_of_whole_steps_continues_each_ranks_own_sequence(a):
    """A skip of k = s x num_replicas samples (s steps of one sample per rank) leaves each rank exactly its
    uninterrupted sequence without its first s entries, wherever no padding is needed (with drop_last, or n
    divisible by the replicas: padding repeats the start of what is dealt, which the skip moved)."""
    replicas = a["num_replicas"]
    steps = a["skip"] // replicas
    arguments = {"epoch": a["epoch"], "shuffle": a["shuffle"], "seed": a["seed"], "drop_last": a["drop_last"]}
    whole = list(ResumableDistributedSampler(Sized(a["n"]), a["rank"], replicas, **arguments))
    resumed = ResumableDistributedSampler(Sized(a["n"]), a["rank"], replicas, skip_num_global_samples=steps * replicas,
                                          **arguments)
    if a["drop_last"] or a["n"] % replicas == 0:
        assert list(resumed) == whole[steps:]


# --- the sampler that reads the device mesh -----------------------------------------------------------------------


class _Mesh:
    """The parts of a DeviceMesh the multi-dim sampler reads."""

    def __init__(self, sizes: dict[str, int], coordinates: dict[str, int], names=True):
        self.mesh_dim_names = tuple(sizes) if names else None
        self.sizes, self.coordinates = sizes, coordinates

    def size(self, dim: int) -> int:
        return list(self.sizes.values())[dim]

    def get_local_rank(self, name: str) -> int:
        return self.coordinates[name]


FULL_MESH = ({"dp_replicate": 2, "dp_shard": 3, "tp": 2}, {"dp_replicate": 1, "dp_shard": 2, "tp": 1})


@pytest.mark.parametrize(
    "mesh, key, rank, replicas",
    [
        (FULL_MESH, "dp", 1 * 3 + 2, 2 * 3),  # row-major over replicate x shard: the last of 6
        (FULL_MESH, "dp_shard", 2, 3),
        (FULL_MESH, "dp_replicate", 1, 2),
        (({"dp_replicate": 2, "dp_shard": 3}, {"dp_replicate": 0, "dp_shard": 0}), "dp", 0, 6),  # the first of 6
        (({"dp_replicate": 2, "dp_shard": 3}, {"dp_replicate": 1, "dp_shard": 0}), "dp", 3, 6),
        (({"dp_shard": 4, "tp": 2}, {"dp_shard": 3, "tp": 1}), "dp", 3, 4),  # no dp_replicate in the mesh
        (({"dp_replicate": 2, "tp": 2}, {"dp_replicate": 1, "tp": 0}), "dp", 1, 2),  # no dp_shard in the mesh
        (({"dp_shard": 1}, {"dp_shard": 0}), "dp_shard", 0, 1),
    ],
)
def test_the_multi_dim_sampler_takes_rank_and_replicas_from_the_mesh(mesh, key, rank, replicas):
    sampler = resumable_distributed_multi_dim_sampler(Sized(12), _Mesh(*mesh), data_parallel_key=key)
    assert (sampler.rank, sampler.num_replicas) == (rank, replicas)
    assert list(sampler) == list(range(rank, 12 - 12 % replicas, replicas))


def test_the_multi_dim_sampler_passes_its_settings_on():
    mesh = _Mesh({"dp_shard": 2}, {"dp_shard": 1})
    sampler = resumable_distributed_multi_dim_sampler(Sized(7), mesh, epoch=2, shuffle=True, seed=3, drop_last=False,
                                                      skip_num_global_samples=2)
    assert (sampler.epoch, sampler.start_epoch, sampler.shuffle, sampler.seed, sampler.drop_last,
            sampler.skip_num_global_samples) == (2, 2, True, 3, False, 2)
    defaults = resumable_distributed_multi_dim_sampler(Sized(7), mesh)
    assert (defaults.epoch, defaults.shuffle, defaults.seed, defaults.drop_last,
            defaults.skip_num_global_samples) == (0, False, 0, True, 0)


@pytest.mark.parametrize(
    "mesh, key, message",
    [
        (_Mesh({"tp": 2}, {"tp": 0}), "dp", r"no dimension 'dp' \(it has \('tp',\)\)"),
        (_Mesh({"dp_shard": 2}, {"dp_shard": 0}), "dp_replicate", r"no dimension 'dp_replicate'"),
        (_Mesh({"dp_shard": 2}, {"dp_shard": 0}, names=False), "dp_shard", r"no dimension 'dp_shard' \(it has \(\)\)"),
        (_Mesh({"dp_shard": 2}, {"dp_shard": 0}, names=False), "dp", r"no dimension 'dp' \(it has \(\)\)"),
    ],
)
def test_a_mesh_without_the_dimension_is_refused(mesh, key, message):
    with pytest.raises(ValueError, match=message):
        resumable_distributed_multi_dim_sampler(Sized(4), mesh, data_parallel_key=key)


@pytest.mark.parametrize("epoch", [0, 3])
def test_the_default_seed_is_torchs(epoch):
    ours = ResumableDistributedSampler(Sized(9), 1, 2, epoch=epoch, shuffle=True)
    theirs = DistributedSampler(Sized(9), num_replicas=2, rank=1, shuffle=True, drop_last=True)
    theirs.set_epoch(epoch)
    assert list(ours) == list(theirs)


def test_the_multi_dim_sampler_reads_dp_shard_unless_told_otherwise():
    mesh = _Mesh({"dp_replicate": 2, "dp_shard": 3}, {"dp_replicate": 1, "dp_shard": 2})
    sampler = resumable_distributed_multi_dim_sampler(Sized(12), mesh)
    assert (sampler.rank, sampler.num_replicas) == (2, 3)  # not 5 of 6 ("dp"), nor 1 of 2 (dp_replicate)
    assert list(sampler) == [2, 5, 8, 11]
