"""Collator and data loaders: batches, position reporting and exact resumption, repeating with reshuffle."""

import numpy as np
import pytest
import torch

from modalities.batch import DatasetBatch
from modalities.data.collate import GPT2LLMCollateFn
from modalities.data.datasets import PackedMemMapDatasetContinuous
from modalities.data.loaders import LLMDataLoader, RepeatingDataLoader
from modalities.data.pbin import PackedFileWriter
from modalities.data.samplers import ResumableDistributedSampler, batch_sampler


@pytest.fixture
def dataset(tmp_path):
    writer = PackedFileWriter(tmp_path / "d.pbin", 2)
    writer.write_tokens(np.arange(1, 98), [97])
    writer.close()
    return PackedMemMapDatasetContinuous(tmp_path / "d.pbin", sequence_length=4, sample_key="input_ids")  # 24 samples


def _loader(dataset, num_workers=0, shuffle=True, rank=0, num_replicas=1, batch_size=3, skip_samples=0, **kwargs):
    sampler = ResumableDistributedSampler(
        dataset, rank, num_replicas, shuffle=shuffle, seed=5, skip_num_global_samples=skip_samples
    )
    return LLMDataLoader(
        dataloader_tag="train",
        dataset=dataset,
        batch_sampler=batch_sampler(sampler, batch_size=batch_size, drop_last=True),
        collate_fn=GPT2LLMCollateFn(sample_key="input_ids", target_key="target_ids"),
        num_workers=num_workers,
        pin_memory=False,
        **kwargs,
    )


def _firsts(batches) -> list[list[int]]:
    return [b.samples["input_ids"][:, 0].tolist() for b in batches]


def test_collator_shifts_targets(dataset):
    batch = GPT2LLMCollateFn("input_ids", "target_ids")([dataset[0], dataset[3]])
    assert isinstance(batch, DatasetBatch)
    assert batch.samples["input_ids"].tolist() == [[1, 2, 3, 4], [13, 14, 15, 16]]
    assert batch.targets["target_ids"].tolist() == [[2, 3, 4, 5], [14, 15, 16, 17]]
    assert batch.samples["input_ids"].dtype == torch.int64
    with pytest.raises(KeyError, match="no key 'ids'"):
        GPT2LLMCollateFn("ids", "t")([dataset[0]])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_on_exactly_the_next_batch(dataset, num_workers):
    full = _firsts(_loader(dataset))
    assert len(full) == 8 and sorted(x for b in full for x in b) == [1 + 4 * i for i in range(24)]

    loader = _loader(dataset, num_workers=num_workers)
    assert loader.dataloader_tag == "train" and loader.batch_size == 3 and len(loader) == 8
    taken = []
    for batch in loader:
        taken.append(batch)
        if len(taken) == 3:
            break
    state = loader.state_dict()
    assert state == {"dataloader_tag": "train", "epoch": 0, "batches_consumed": 3, "start_sample": 0,
                     "sampler_skip_num_global_samples": 0, "num_replicas": 1, "batch_size": 3}

    restarted = _loader(dataset, num_workers=num_workers)  # a fresh process after a restart
    restarted.load_state_dict(state)
    assert _firsts(taken) + _firsts(restarted) == full
    assert restarted.state_dict()["batches_consumed"] == 0  # the epoch finished


def test_resume_keeps_a_sampler_skip_and_refuses_a_changed_one(dataset):
    full = _firsts(_loader(dataset, skip_samples=6))  # a run that itself started Modalities' way, 6 samples in
    loader = _loader(dataset, skip_samples=6)
    taken = [batch for _, batch in zip(range(2), loader)]
    state = loader.state_dict()
    assert state["sampler_skip_num_global_samples"] == 6

    restarted = _loader(dataset, skip_samples=6)
    restarted.load_state_dict(state)
    assert _firsts(taken) + _firsts(restarted) == full

    # Also skipping the consumed samples in the config would skip them twice: refused, with the value to restore.
    doubly_skipped = _loader(dataset, skip_samples=12)
    with pytest.raises(ValueError, match="sampler now skips 12 samples.*skip_num_global_samples back to 6"):
        doubly_skipped.load_state_dict(state)

    written_before_the_skip_was_kept = {k: v for k, v in state.items() if k != "sampler_skip_num_global_samples"}
    restarted = _loader(dataset, skip_samples=6)
    restarted.load_state_dict(written_before_the_skip_was_kept)
    assert _firsts(restarted) == full[2:]


def test_skip_and_fixed_num_batches(dataset):
    full = _firsts(_loader(dataset))
    assert _firsts(_loader(dataset, skip_num_batches=2, fixed_num_batches=5)) == full[2:5]
    with pytest.raises(ValueError, match="fewer than fixed_num_batches"):
        _loader(dataset, fixed_num_batches=9)


def test_repeating_loader_reshuffles_each_epoch_and_resumes(dataset):
    repeating = RepeatingDataLoader(_loader(dataset), num_epochs=3, reshuffle_after_epoch=True)
    assert len(repeating) == 24 and repeating.dataloader_tag == "train" and repeating.batch_size == 3
    batches = _firsts(repeating)
    epochs = [batches[0:8], batches[8:16], batches[16:24]]
    for epoch in epochs:
        assert sorted(x for b in epoch for x in b) == [1 + 4 * i for i in range(24)]
    assert epochs[0] != epochs[1] != epochs[2]

    same_order = _firsts(RepeatingDataLoader(_loader(dataset), num_epochs=2, reshuffle_after_epoch=False))
    assert same_order[:8] == same_order[8:] == epochs[0]

    partial = RepeatingDataLoader(_loader(dataset), num_epochs=3, reshuffle_after_epoch=True)
    consumed = []
    for batch in partial:
        consumed.append(batch)
        if len(consumed) == 11:
            break
    state = partial.state_dict()
    assert state["pass"] == 1 and state["dataloader"]["batches_consumed"] == 3
    resumed = RepeatingDataLoader(_loader(dataset), num_epochs=3, reshuffle_after_epoch=True)
    resumed.load_state_dict(state)
    assert _firsts(consumed) + _firsts(resumed) == batches


def test_ranks_get_disjoint_batches(dataset):
    per_rank = [_firsts(_loader(dataset, rank=r, num_replicas=2, batch_size=2)) for r in range(2)]
    flat = [x for rank in per_rank for b in rank for x in b]
    assert sorted(flat) == [1 + 4 * i for i in range(24)]


def _first_tokens_of_global_order(dataset, start: int) -> list[int]:
    order = ResumableDistributedSampler(dataset, 0, 1, shuffle=True, seed=5).global_order()
    return [1 + 4 * i for i in order[start:]]  # sample i starts with token 1 + 4 i


@pytest.mark.parametrize("saved_ranks, resumed_ranks", [(2, 1), (1, 2), (2, 3)])
def test_a_position_moves_to_another_number_of_ranks_and_continues_the_global_order(dataset, saved_ranks,
                                                                                      resumed_ranks):
    saved = [_loader(dataset, rank=r, num_replicas=saved_ranks, batch_size=2) for r in range(saved_ranks)]
    iterators = [iter(loader) for loader in saved]
    for _ in range(2):  # every rank takes two batches, in lockstep as training does
        for iterator in iterators:
            next(iterator)
    states = [loader.state_dict() for loader in saved]
    assert all(state == states[0] | {"num_replicas": saved_ranks} for state in states)  # any rank's will do

    resumed = [_loader(dataset, rank=r, num_replicas=resumed_ranks, batch_size=2) for r in range(resumed_ranks)]
    for loader in resumed:
        loader.load_state_dict(states[0])
    per_rank = [[x for b in _firsts(loader) for x in b] for loader in resumed]
    # dealt round-robin, the ranks' samples interleave into the global order right after the consumed ones
    interleaved = [per_rank[i % resumed_ranks][i // resumed_ranks] for i in range(sum(map(len, per_rank)))]
    consumed = 2 * 2 * saved_ranks
    assert interleaved == _first_tokens_of_global_order(dataset, consumed)[: len(interleaved)]
    assert len(interleaved) > 24 - consumed - resumed_ranks * 2  # at most the last incomplete batches dropped

    # a moved position is saved and resumed like any other
    moved = _loader(dataset, rank=0, num_replicas=resumed_ranks, batch_size=2)
    moved.load_state_dict(states[0])
    taken = [batch for _, batch in zip(range(1), moved)]
    state = moved.state_dict()
    assert state["start_sample"] == consumed and state["sampler_skip_num_global_samples"] == 0
    again = _loader(dataset, rank=0, num_replicas=resumed_ranks, batch_size=2)
    again.load_state_dict(state)
    assert [x for b in _firsts(taken) + _firsts(again) for x in b] == per_rank[0]


def test_a_position_that_cannot_move_is_refused(dataset):
    state = _loader(dataset, rank=0, num_replicas=2, batch_size=2).state_dict()
    with pytest.raises(ValueError, match="fixed_num_batches counts batches per rank.*resume with 2 ranks"):
        _loader(dataset, batch_size=2, fixed_num_batches=4).load_state_dict(state)
    plain = LLMDataLoader(dataloader_tag="train", dataset=dataset,
                          batch_sampler=torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(dataset), 2,
                                                                      drop_last=True))
    with pytest.raises(ValueError, match="SequentialSampler.*cannot start an epoch.*resumable_distributed_sampler"):
        plain.load_state_dict(state | {"batches_consumed": 1})


def test_a_repeated_epoch_reads_the_samples_its_starting_skip_left_out(dataset):
    repeating = RepeatingDataLoader(_loader(dataset, skip_samples=6), num_epochs=2, reshuffle_after_epoch=False)
    batches = _firsts(repeating)
    assert len(batches) == 6 + 8  # 18 samples after the skip, then the whole epoch again
    assert sorted(x for b in batches[6:] for x in b) == [1 + 4 * i for i in range(24)]


def test_a_resume_in_the_repeated_pass_reads_what_the_starting_skip_left_out(dataset):
    """Resumed inside the second pass (same epoch, no reshuffle), the config's starting skip lies behind: the
    rest of the pass is read whole, as by the loader that was never stopped."""
    uninterrupted = _firsts(RepeatingDataLoader(_loader(dataset, skip_samples=6), num_epochs=2,
                                                reshuffle_after_epoch=False))
    repeating = RepeatingDataLoader(_loader(dataset, skip_samples=6), num_epochs=2, reshuffle_after_epoch=False)
    taken = [batch for _, batch in zip(range(6 + 2), repeating)]  # the first pass (6 batches) and 2 of the second
    resumed = RepeatingDataLoader(_loader(dataset, skip_samples=6), num_epochs=2, reshuffle_after_epoch=False)
    resumed.load_state_dict(repeating.state_dict())
    rest = _firsts(resumed)
    assert len(rest) == 6  # by hand: the second pass has 8 batches, 2 were taken
    assert _firsts(taken) + rest == uninterrupted


def test_the_configured_skip_is_recorded_for_its_own_epoch_only(dataset):
    loader = _loader(dataset, skip_samples=6)
    assert loader.state_dict()["sampler_skip_num_global_samples"] == 6
    loader.set_epoch(1)  # a later epoch starts at its first sample: the skip was the starting epoch's
    assert (loader.state_dict()["sampler_skip_num_global_samples"], loader.state_dict()["start_sample"]) == (0, 0)


def test_another_loaders_position_and_an_impossible_one_are_refused(dataset):
    loader = _loader(dataset)
    state = {**loader.state_dict(), "dataloader_tag": "test"}
    with pytest.raises(ValueError, match="data loader state of 'test' cannot be loaded into 'train'"):
        _loader(dataset).load_state_dict(state)
    with pytest.raises(ValueError, match="data loader 'train': 9 consumed batches do not fit an epoch of 8"):
        _loader(dataset).load_state_dict({**loader.state_dict(), "batches_consumed": 9})
    moved = {**loader.state_dict(), "num_replicas": 2, "batches_consumed": 5}
    with pytest.raises(ValueError, match="beyond the dataset's 24 samples"):  # 5 batches x 3 x 2 ranks = 30
        _loader(dataset).load_state_dict(moved)
    without_batch_size = {k: v for k, v in moved.items() if k != "batch_size"}
    with pytest.raises(ValueError, match="the saved position does not record its batch size"):
        _loader(dataset).load_state_dict(without_batch_size)


def test_a_position_saved_right_after_an_epochs_last_batch_starts_the_next_pass(dataset):
    loader = _loader(dataset)
    full = _firsts(loader)  # all 8 batches of the epoch
    state = loader.state_dict()
    assert (state["epoch"], state["batches_consumed"]) == (0, 0)  # a finished pass: the start of the same epoch
    restarted = _loader(dataset)
    restarted.load_state_dict(state)
    assert _firsts(restarted) == full  # nothing is skipped or read twice


def test_fixed_num_batches_counts_from_the_resumed_position(dataset):
    full = _firsts(_loader(dataset))
    loader = _loader(dataset, fixed_num_batches=5)
    taken = [batch for _, batch in zip(range(2), loader)]
    restarted = _loader(dataset, fixed_num_batches=5)
    restarted.load_state_dict(loader.state_dict())
    assert _firsts(taken) + _firsts(restarted) == full[:5]  # 5 batches in all, not 5 more


def test_a_repeating_loader_can_be_iterated_again_from_its_start(dataset):
    repeating = RepeatingDataLoader(_loader(dataset), num_epochs=2, reshuffle_after_epoch=True)
    first = _firsts(repeating)
    assert len(first) == 16
    assert _firsts(repeating) == first  # a second full iteration: both passes again, in the same orders


def test_a_position_in_a_later_epoch_moves_to_another_number_of_ranks(dataset):
    # two ranks read epoch 1 (another permutation than epoch 0) for 2 batches each, then one rank takes over
    global_order = ResumableDistributedSampler(dataset, 0, 1, shuffle=True, seed=5, epoch=1).global_order()
    ranks = [_loader(dataset, rank=r, num_replicas=2) for r in (0, 1)]
    for loader in ranks:
        loader.set_epoch(1)
        for _, _ in zip(range(2), loader):
            pass
    state = ranks[0].state_dict()
    assert (state["epoch"], state["batches_consumed"]) == (1, 2)
    alone = _loader(dataset)
    alone.load_state_dict(state)
    rest = [x for batch in _firsts(alone) for x in batch]
    # 2 batches x 3 samples x 2 ranks = 12 samples of epoch 1's order are behind; the rest follows, in order
    assert rest == [1 + 4 * i for i in global_order[12:]]
