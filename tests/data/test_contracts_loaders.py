"""The loaders' contracts: boundary tables worked out by hand, and resume positions compared on drawn inputs with
a straightforward re-implementation written here (torch's sampler gives the permutation; dealing, padding,
trimming and batching are written out below, from the documented rule)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DistributedSampler

from modalities.data.loaders import LLMDataLoader, RepeatingDataLoader
from modalities.data.samplers import ResumableDistributedSampler, batch_sampler


class Positions(torch.utils.data.Dataset):
    """Sample i is i: a batch shows which samples it holds."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def as_list(batch: list[int]) -> list[int]:
    return list(batch)


def make_loader(n=10, rank=0, num_replicas=1, batch_size=2, shuffle=False, seed=0, epoch=0, skip_samples=0,
                sampler_drop_last=True, batch_drop_last=True, **loader_arguments) -> LLMDataLoader:
    dataset = Positions(n)
    sampler = ResumableDistributedSampler(dataset, rank, num_replicas, epoch=epoch, shuffle=shuffle, seed=seed,
                                          drop_last=sampler_drop_last, skip_num_global_samples=skip_samples)
    return LLMDataLoader("train", dataset, batch_sampler(sampler, batch_size, batch_drop_last), collate_fn=as_list,
                         **loader_arguments)


def take(iterable, count: int) -> list:
    iterator = iter(iterable)
    return [next(iterator) for _ in range(count)]


# --- length, skip_num_batches and fixed_num_batches, by hand -------------------------------------------------------

# 10 samples in batches of 2 on one rank: batches [0,1] [2,3] [4,5] [6,7] [8,9]; with 11 samples and the short
# batch kept, a sixth batch [10]
BATCHES = [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]


@pytest.mark.parametrize(
    "n, batch_drop_last, skip, fixed, length, expected",
    [
        (10, True, 0, None, 5, BATCHES),
        (11, True, 0, None, 5, BATCHES),  # the short last batch dropped
        (11, False, 0, None, 6, BATCHES + [[10]]),  # kept
        (1, False, 0, None, 1, [[0]]),  # one sample, one short batch
        (1, True, 0, None, 0, []),  # one sample, dropped
        (10, True, 1, None, 5, BATCHES[1:]),  # skip the first batch
        (10, True, 4, None, 5, BATCHES[4:]),  # skip all but the last
        (10, True, 5, None, 5, []),  # skip exactly all
        (10, True, 0, 5, 5, BATCHES),  # fixed exactly the epoch
        (10, True, 0, 4, 4, BATCHES[:4]),  # one less
        (10, True, 0, 1, 1, BATCHES[:1]),
        (10, True, 0, 0, 0, []),
        (10, True, 2, 4, 4, BATCHES[2:4]),  # the skip counts towards the fixed number
        (10, True, 4, 4, 4, []),
    ],
)
def test_length_and_batches_worked_out_by_hand(n, batch_drop_last, skip, fixed, length, expected):
    loader = make_loader(n, batch_drop_last=batch_drop_last, skip_num_batches=skip, fixed_num_batches=fixed)
    assert len(loader) == length
    assert loader.batches_consumed == skip
    assert list(loader) == expected
    assert loader.batches_consumed == 0  # a pass run to its end: the start of the same epoch
    if n == 10:
        assert list(loader) == BATCHES[:length]  # the next pass reads the epoch from its first batch


@pytest.mark.parametrize(
    "skip, fixed, message",
    [
        (0, 6, r"'train' has only 5 batches per epoch, fewer than fixed_num_batches \(6\)"),  # one past the epoch
        (6, None, r"'train': skip_num_batches \(6\) must lie in 0..5"),  # one past the epoch
        (5, 4, r"'train': skip_num_batches \(5\) must lie in 0..4"),  # one past the fixed number
        (-1, None, r"'train': skip_num_batches \(-1\) must lie in 0..5"),
    ],
)
def test_skips_and_fixed_numbers_outside_the_epoch_are_refused(skip, fixed, message):
    with pytest.raises(ValueError, match=message):
        make_loader(10, skip_num_batches=skip, fixed_num_batches=fixed)


def test_the_loader_reports_its_tag_batch_size_and_epoch():
    loader = make_loader(10, batch_size=3, epoch=2)
    assert (loader.dataloader_tag, loader.batch_size, loader.epoch, loader.batches_consumed) == ("train", 3, 2, 0)
    loader.set_epoch(4)
    assert (loader.epoch, loader.batches_consumed) == (4, 0)


@pytest.mark.parametrize("stop_after", [0, 1, 4, 5])  # none, the first, all but the last, exactly the last
def test_the_position_counts_the_batches_handed_out(stop_after):
    loader = make_loader(10)
    assert take(loader, stop_after) == BATCHES[:stop_after]
    assert loader.batches_consumed == stop_after  # stopped right after the last batch: len(loader), not 0
    state = loader.state_dict()
    assert state == {"dataloader_tag": "train", "epoch": 0, "batches_consumed": stop_after, "start_sample": 0,
                     "sampler_skip_num_global_samples": 0, "num_replicas": 1, "batch_size": 2}
    resumed = make_loader(10)
    resumed.load_state_dict(state)
    assert resumed.batches_consumed == stop_after
    assert list(resumed) == BATCHES[stop_after:]


def test_the_length_is_the_epochs_that_is_read_next():
    loader = make_loader(10, skip_samples=4)  # the starting epoch: 6 samples, 3 batches
    assert len(loader) == 3
    loader.set_epoch(1)
    assert len(loader) == 5 and list(loader) == BATCHES
    loader.load_state_dict(_state(epoch=0, start_sample=4, sampler_skip_num_global_samples=4, batches_consumed=3))
    assert (len(loader), list(loader)) == (3, [])
    # a position in a later epoch may lie past the starting epoch's shorter length
    resumed = make_loader(10, skip_samples=4)
    resumed.load_state_dict(_state(epoch=1, batches_consumed=4))
    assert (len(resumed), list(resumed)) == (5, BATCHES[4:])
    with pytest.raises(ValueError, match="6 consumed batches do not fit an epoch of 5"):
        make_loader(10, skip_samples=4).load_state_dict(_state(epoch=1, batches_consumed=6))


def test_set_epoch_starts_that_epoch_from_its_first_batch():
    loader = make_loader(10, shuffle=True, seed=3)
    take(loader, 2)
    loader.set_epoch(1)
    order = ResumableDistributedSampler(Positions(10), 0, 1, epoch=1, shuffle=True, seed=3).global_order()
    assert [x for batch in loader for x in batch] == order


# --- load_state_dict: the positions it refuses, by hand ------------------------------------------------------------


def _state(**changes):
    return {"dataloader_tag": "train", "epoch": 0, "batches_consumed": 0, "start_sample": 0,
            "sampler_skip_num_global_samples": 0, "num_replicas": 1, "batch_size": 2} | changes


@pytest.mark.parametrize(
    "state, message",
    [
        (_state(dataloader_tag="val"), "data loader state of 'val' cannot be loaded into 'train'"),
        (_state(batches_consumed=6), "'train': 6 consumed batches do not fit an epoch of 5"),  # one past
        (_state(batches_consumed=-1), "'train': -1 consumed batches do not fit an epoch of 5"),
        (_state(sampler_skip_num_global_samples=2), "counts from sample 2, but the sampler now skips 0 samples"),
        (_state(start_sample=11), "sample 11 of epoch 0, lies beyond the dataset's 10 samples"),  # one past
        # 2 ranks x 3 batches of 3 = 18 samples counted: past the 10 held by more than a step of 6
        (_state(num_replicas=2, batches_consumed=3, batch_size=3), "sample 18 of epoch 0, lies beyond"),
        (_state(num_replicas=2, batch_size=None), "the saved position does not record its batch size"),
    ],
)
def test_positions_that_cannot_be_continued_are_refused(state, message):
    with pytest.raises(ValueError, match=message):
        make_loader(10).load_state_dict(state)


@pytest.mark.parametrize(
    "state",
    [_state(epoch=1, batches_consumed=6, sampler_skip_num_global_samples=0),  # past epoch 1's 5 batches
     _state(start_sample=4, sampler_skip_num_global_samples=2, batches_consumed=4),  # past 3 batches from 4
     _state(dataloader_tag="x"), _state(start_sample=11, sampler_skip_num_global_samples=2)],
)
def test_a_refused_position_leaves_the_loader_as_it_was(state):
    loader = make_loader(10, skip_samples=2)  # 8 samples of epoch 0: batches [2,3] [4,5] [6,7] [8,9]
    take(loader, 1)
    with pytest.raises(ValueError):
        loader.load_state_dict(state)
    assert (loader.epoch, loader.batches_consumed, len(loader)) == (0, 1, 4)
    assert list(loader) == [[4, 5], [6, 7], [8, 9]]


@pytest.mark.parametrize(
    "state, expected",
    [
        (_state(batches_consumed=5), []),  # exactly the end: nothing left in this epoch
        (_state(start_sample=10), []),  # a start at exactly the dataset's end
        (_state(start_sample=9), []),  # one sample left: no whole batch
        (_state(start_sample=4, batches_consumed=1), [[6, 7], [8, 9]]),  # from 4: [4,5] [6,7] [8,9]
        ({"epoch": 0, "batches_consumed": 2}, BATCHES[2:]),  # a state written before the other keys were kept
        (_state(epoch=3, batches_consumed=4), BATCHES[4:]),  # a later epoch (unshuffled: the same order)
    ],
)
def test_positions_at_the_boundaries_are_continued(state, expected):
    loader = make_loader(10)
    loader.load_state_dict(state)
    assert loader.epoch == state["epoch"]
    assert list(loader) == expected


@pytest.mark.parametrize(
    "num_replicas, batches, batch_size, expected_start",
    [
        (2, 2, 2, 8),  # 2 ranks x 2 batches x 2: 8 samples behind
        (2, 3, 2, 10),  # 12 counted, 10 held: the epoch's last step over-counted by padding: its end
        (3, 1, 3, 9),
        (3, 2, 3, 10),  # 18 counted, past 10 by less than one step of 9: the end
        (4, 1, 4, 10),  # 16 counted, one step of 16 covers it
    ],
)
def test_a_position_of_other_ranks_starts_after_the_samples_they_consumed(num_replicas, batches, batch_size,
                                                                           expected_start):
    loader = make_loader(10)
    loader.load_state_dict(_state(num_replicas=num_replicas, batches_consumed=batches, batch_size=batch_size))
    assert (loader.state_dict()["start_sample"], loader.batches_consumed) == (expected_start, 0)
    rest = list(range(expected_start, 10))
    assert list(loader) == [rest[i : i + 2] for i in range(0, len(rest) - 1, 2)]


def test_a_position_of_other_ranks_is_refused_with_a_fixed_number_of_batches():
    with pytest.raises(ValueError, match="fixed_num_batches counts batches per rank.*resume with 2 ranks"):
        make_loader(10, fixed_num_batches=5).load_state_dict(_state(num_replicas=2, batches_consumed=1))


# --- RepeatingDataLoader, by hand ------------------------------------------------------------------------------------


@pytest.mark.parametrize("reshuffle", [False, True])
@pytest.mark.parametrize("num_epochs", [0, 1, 2])
def test_a_repeating_loader_makes_num_epochs_passes(num_epochs, reshuffle):
    loader = make_loader(6, shuffle=True, seed=1)
    repeating = RepeatingDataLoader(loader, num_epochs=num_epochs, reshuffle_after_epoch=reshuffle)
    assert len(repeating) == num_epochs * 3
    assert (repeating.dataloader_tag, repeating.batch_size) == ("train", 2)
    batches = list(repeating)
    assert len(batches) == num_epochs * 3
    for p in range(num_epochs):
        epoch = p if reshuffle else 0
        order = ResumableDistributedSampler(Positions(6), 0, 1, epoch=epoch, shuffle=True, seed=1).global_order()
        assert [x for batch in batches[3 * p : 3 * p + 3] for x in batch] == order
    assert repeating.state_dict()["pass"] == 0  # finished: starts over


@pytest.mark.parametrize("reshuffle", [False, True])
# nothing, the first batch, the end of the first pass, the first of the second, exactly the last
@pytest.mark.parametrize("stop_after", [0, 1, 2, 3, 5])
def test_a_repeating_loader_resumes_at_every_boundary(stop_after, reshuffle):
    def fresh():
        return RepeatingDataLoader(make_loader(6, shuffle=True, seed=1, skip_samples=2), num_epochs=2,
                                   reshuffle_after_epoch=reshuffle)

    uninterrupted = list(fresh())
    assert len(uninterrupted) == 2 + 3  # the first pass without the skipped 2 samples, the second whole
    stopped = fresh()
    taken = take(stopped, stop_after)
    resumed = fresh()
    resumed.load_state_dict(stopped.state_dict())
    assert taken + list(resumed) == uninterrupted


# --- resume positions on drawn inputs, against a re-implementation -------------------------------------------------


def torch_permutation(n: int, shuffle: bool, seed: int, epoch: int) -> list[int]:
    whole = DistributedSampler(Positions(n), num_replicas=1, rank=0, shuffle=shuffle, seed=seed, drop_last=False)
    whole.set_epoch(epoch)
    return list(whole)


def rank_batches(order: list[int], start: int, replicas: int, rank: int, batch_size: int, sampler_drop_last: bool,
                 batch_drop_last: bool) -> list[list[int]]:
    """Written from the rule: the order from ``start`` on, trimmed to a multiple of the replicas or padded to one
    by repeating it from its start, dealt round-robin, cut into batches (the short last one dropped or kept)."""
    rest = order[start:]
    per_rank = len(rest) // replicas if sampler_drop_last else -(-len(rest) // replicas)
    padded = list(rest)
    while len(padded) < per_rank * replicas:
        padded += rest[: per_rank * replicas - len(padded)]
    mine = [padded[i * replicas + rank] for i in range(per_rank)]
    batches = [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
    if batch_drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


@st.composite
def runs(draw):
    n = draw(st.integers(1, 24))
    return {
        "n": n,
        "saved_ranks": draw(st.integers(1, 4)),
        "resumed_ranks": draw(st.integers(1, 4)),
        "batch_size": draw(st.integers(1, 4)),
        "shuffle": draw(st.booleans()),
        "seed": draw(st.integers(0, 1000)),
        "epoch": draw(st.integers(0, 3)),
        "later_epoch": draw(st.booleans()),  # read the epoch after the configured one (the skip is not its)
        "skip": draw(st.integers(0, n)),
        "sampler_drop_last": draw(st.booleans()),
        "batch_drop_last": draw(st.booleans()),
        "consumed_fraction": draw(st.floats(0, 1)),
    }


@settings(max_examples=150, deadline=None)
@given(runs())
def test_a_saved_position_resumes_where_the_rule_says(r):
    common = {"n": r["n"], "batch_size": r["batch_size"], "shuffle": r["shuffle"], "seed": r["seed"],
              "epoch": r["epoch"], "skip_samples": r["skip"], "sampler_drop_last": r["sampler_drop_last"],
              "batch_drop_last": r["batch_drop_last"]}
    rule = {"batch_size": r["batch_size"], "sampler_drop_last": r["sampler_drop_last"],
            "batch_drop_last": r["batch_drop_last"]}
    epoch = r["epoch"] + r["later_epoch"]
    order = torch_permutation(r["n"], r["shuffle"], r["seed"], epoch)
    skip = 0 if r["later_epoch"] else r["skip"]

    saved = [make_loader(rank=rank, num_replicas=r["saved_ranks"], **common) for rank in range(r["saved_ranks"])]
    expected_saved = [rank_batches(order, skip, r["saved_ranks"], rank, **rule) for rank in range(r["saved_ranks"])]
    consumed = int(r["consumed_fraction"] * len(saved[0]))
    for loader, expected in zip(saved, expected_saved):
        if r["later_epoch"]:
            loader.set_epoch(epoch)
        assert len(loader) == len(expected)
        assert take(loader, consumed) == expected[:consumed]  # the ranks step in lockstep, as training does
    state = saved[0].state_dict()
    assert state == {"dataloader_tag": "train", "epoch": epoch, "batches_consumed": consumed, "start_sample": skip,
                     "sampler_skip_num_global_samples": skip, "num_replicas": r["saved_ranks"],
                     "batch_size": r["batch_size"]}

    resumed = [make_loader(rank=rank, num_replicas=r["resumed_ranks"], **common) for rank in range(r["resumed_ranks"])]
    if r["resumed_ranks"] == r["saved_ranks"]:
        expected = [batches[consumed:] for batches in expected_saved]
    else:
        # the samples all saved ranks consumed, at most the whole epoch (padding or a short batch over-counts)
        start = min(skip + consumed * r["batch_size"] * r["saved_ranks"], r["n"])
        expected = [rank_batches(order, start, r["resumed_ranks"], rank, **rule) for rank in range(r["resumed_ranks"])]
    for loader, batches in zip(resumed, expected):
        loader.load_state_dict(state)
        assert loader.epoch == epoch
        assert list(loader) == batches


def test_the_loader_reads_in_the_main_process_unless_told_otherwise():
    assert make_loader().num_workers == 0
    assert make_loader(num_workers=2).num_workers == 2


@pytest.mark.parametrize("pin_memory", [False, True])
def test_pin_memory_is_off_unless_asked_and_passed_to_torch(pin_memory):
    assert make_loader().pin_memory is False
    assert make_loader(pin_memory=pin_memory).pin_memory is pin_memory


def test_a_batch_sampler_of_torchs_own_without_a_batch_size_or_sampler():
    """Any batch sampler: lists of indices, no batch_size or sampler attribute; the loader then reports no batch
    size, no replicas, epoch 0 and no skip, and still counts its position."""

    class Pairs(torch.utils.data.Sampler):
        def __iter__(self):
            return iter([[0, 1], [2, 3], [4]])

        def __len__(self):
            return 3

    loader = LLMDataLoader("t", Positions(5), Pairs(), collate_fn=as_list)
    assert (loader.batch_size, loader.epoch, len(loader)) == (None, 0, 3)
    assert take(loader, 2) == [[0, 1], [2, 3]]
    assert loader.state_dict() == {"dataloader_tag": "t", "epoch": 0, "batches_consumed": 2, "start_sample": 0,
                                   "sampler_skip_num_global_samples": 0, "num_replicas": None, "batch_size": None}
    resumed = LLMDataLoader("t", Positions(5), Pairs(), collate_fn=as_list)
    resumed.load_state_dict(loader.state_dict())
    assert list(resumed) == [[4]]
