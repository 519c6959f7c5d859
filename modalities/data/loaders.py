"""Data loaders that report and restore their position, so training resumes on exactly the next batch.

The position is counted where batches are consumed (in the training process), so prefetching by loader
workers never makes it run ahead. Restoring skips the consumed batches at the index level: skipped samples are
never read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from torch.utils.data import DataLoader, Dataset, Sampler


class _ResumableBatchSampler(Sampler[list[int]]):
    """Wraps a batch sampler: yields its batches from ``start`` up to ``stop``."""

    def __init__(self, batch_sampler: Sampler, stop: int | None = None):
        self.batch_sampler = batch_sampler
        self.start = 0
        self.stop = stop

    @property
    def batch_size(self) -> int | None:
        return getattr(self.batch_sampler, "batch_size", None)

    @property
    def sampler(self) -> Sampler | None:
        return getattr(self.batch_sampler, "sampler", None)

    def num_batches(self) -> int:
        total = len(self.batch_sampler)
        return total if self.stop is None else min(total, self.stop)

    def __len__(self) -> int:
        return self.num_batches()

    def __iter__(self) -> Iterator[list[int]]:
        return islice(iter(self.batch_sampler), self.start, self.stop)


class LLMDataLoader(DataLoader):
    """A torch DataLoader with a ``dataloader_tag`` and ``state_dict``/``load_state_dict`` (epoch, batches
    consumed). ``len()`` is the number of batches of a whole epoch."""

    def __init__(
        self,
        dataloader_tag: str,
        dataset: Dataset,
        batch_sampler: Sampler,
        collate_fn: Callable | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        skip_num_batches: int = 0,
        fixed_num_batches: int | None = None,
    ):
        resumable = _ResumableBatchSampler(batch_sampler, stop=fixed_num_batches)
        if fixed_num_batches is not None and len(batch_sampler) < fixed_num_batches:
            raise ValueError(
                f"data loader '{dataloader_tag}' has only {len(batch_sampler)} batches per epoch, fewer than "
                f"fixed_num_batches ({fixed_num_batches})"
            )
        super().__init__(
            dataset,
            batch_sampler=resumable,
            collate_fn=collate_fn,
            num_workers=num_workers,
            pin_memory=pin_memory,
        )
        # torch sets batch_size to None when given a batch sampler and forbids assigning it later; trainers read
        # the per-rank micro-batch size from here, as with Modalities' loader.
        object.__setattr__(self, "batch_size", resumable.batch_size)
        self.dataloader_tag = dataloader_tag
        self._resumable = resumable
        self._epoch = getattr(resumable.sampler, "epoch", 0)
        self._batches_consumed = skip_num_batches
        self._configured_skip = int(getattr(resumable.sampler, "skip_num_global_samples", 0) or 0)
        self._configured_start_epoch = getattr(resumable.sampler, "start_epoch", self._epoch)

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def batches_consumed(self) -> int:
        """Batches of the current epoch handed out so far."""
        return self._batches_consumed

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its first batch (its sampler permutes by seed + epoch)."""
        self._epoch = epoch
        self._batches_consumed = 0

    def _skip_in_epoch(self, epoch: int) -> int:
        """Samples the sampler leaves out at the start of ``epoch`` (it skips in its starting epoch only)."""
        sampler = self._resumable.sampler
        skip = int(getattr(sampler, "skip_num_global_samples", 0) or 0)
        return skip if epoch == getattr(sampler, "start_epoch", epoch) else 0

    def _configured_skip_in_epoch(self, epoch: int) -> int:
        """The skip the config asked for: Modalities' way of restarting, as opposed to a resumed position."""
        return self._configured_skip if epoch == self._configured_start_epoch else 0

    def forget_start_skip(self) -> None:
        """The skip covered samples consumed before a restart; a later pass over the same epoch reads them."""
        sampler = self._resumable.sampler
        if getattr(sampler, "skip_num_global_samples", 0):
            sampler.skip_num_global_samples = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "dataloader_tag": self.dataloader_tag,
            "epoch": self._epoch,
            "batches_consumed": self._batches_consumed,
            # batches_consumed counts from start_sample of the epoch's global order; of that, the config skipped
            # sampler_skip_num_global_samples (a resume must not skip those again)
            "start_sample": self._skip_in_epoch(self._epoch),
            "sampler_skip_num_global_samples": self._configured_skip_in_epoch(self._epoch),
            # with the batch size, what lets another number of ranks take over the position
            "num_replicas": getattr(self._resumable.sampler, "num_replicas", None),
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue at the saved position. Saved by another number of ranks, the run continues the same global
        sample order: the samples that all ranks consumed become the sampler's starting skip."""
        tag = self.dataloader_tag
        if state.get("dataloader_tag", tag) != tag:
            raise ValueError(f"data loader state of '{state['dataloader_tag']}' cannot be loaded into '{tag}'")
        epoch = int(state["epoch"])
        batches = int(state["batches_consumed"])
        configured = self._configured_skip_in_epoch(epoch)
        saved_skip = state.get("sampler_skip_num_global_samples")  # absent in states written before it was kept
        if saved_skip is not None and int(saved_skip) != configured:
            raise ValueError(
                f"data loader '{tag}': the saved position ({batches} batches of epoch {epoch}) counts from sample "
                f"{saved_skip}, but the sampler now skips {configured} samples; resuming restores the data "
                f"position by itself, so set the sampler's skip_num_global_samples back to {saved_skip}"
            )
        start = int(state.get("start_sample", self._skip_in_epoch(epoch)))
        saved_replicas = state.get("num_replicas")
        replicas = getattr(self._resumable.sampler, "num_replicas", None)
        if saved_replicas is not None and saved_replicas != replicas:
            if self._resumable.stop is not None:
                raise ValueError(
                    f"data loader '{tag}': fixed_num_batches counts batches per rank, so a position saved by "
                    f"{saved_replicas} ranks cannot move to {replicas}; resume with {saved_replicas} ranks"
                )
            if state.get("batch_size") is None:
                raise ValueError(f"data loader '{tag}': the saved position does not record its batch size")
            start += batches * int(state["batch_size"]) * int(saved_replicas)
            batches = 0
        if start != self._skip_in_epoch(epoch):
            self._start_epoch_at(epoch, start, saved_replicas)
        if not 0 <= batches <= len(self):
            raise ValueError(f"data loader '{tag}': {batches} consumed batches do not fit an epoch of {len(self)}")
        self._epoch = epoch
        self._batches_consumed = batches

    def _start_epoch_at(self, epoch: int, start: int, saved_replicas) -> None:
        sampler = self._resumable.sampler
        if not all(hasattr(sampler, name) for name in ("skip_num_global_samples", "start_epoch", "dataset")):
            raise ValueError(
                f"data loader '{self.dataloader_tag}': its sampler ({type(sampler).__name__}) cannot start an epoch "
                f"at sample {start}, which a position saved by {saved_replicas} ranks needs here; use "
                "sampler/resumable_distributed_sampler, or resume with the saved number of ranks"
            )
        if start > len(sampler.dataset):
            raise ValueError(
                f"data loader '{self.dataloader_tag}': the saved position, sample {start} of epoch {epoch}, lies "
                f"beyond the dataset's {len(sampler.dataset)} samples"
            )
        sampler.start_epoch = epoch
        sampler.skip_num_global_samples = start

    def __iter__(self):
        sampler = self._resumable.sampler
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self._epoch)
        self._resumable.start = self._batches_consumed
        return self._count(super().__iter__(), self._resumable.num_batches())

    def _count(self, batches: Iterator, num_batches: int) -> Iterator:
        for batch in batches:
            self._batches_consumed += 1
            yield batch
        # A finished pass leaves the loader at the start of the same epoch; the caller moves epochs on.
        if self._batches_consumed >= num_batches:
            self._batches_consumed = 0


class RepeatingDataLoader:
    """Passes over a loader ``num_epochs`` times; with ``reshuffle_after_epoch`` pass e uses sampler epoch
    start + e, otherwise every pass repeats the first order."""

    def __init__(self, dataloader: LLMDataLoader, num_epochs: int, reshuffle_after_epoch: bool = False):
        self.dataloader = dataloader
        self.num_epochs = num_epochs
        self.reshuffle_after_epoch = reshuffle_after_epoch
        self._first_epoch = dataloader.epoch
        self._pass = 0

    @property
    def dataloader_tag(self) -> str:
        return self.dataloader.dataloader_tag

    @property
    def batch_size(self) -> int | None:
        return self.dataloader.batch_size

    def __len__(self) -> int:
        return self.num_epochs * len(self.dataloader)

    def state_dict(self) -> dict[str, Any]:
        return {"pass": self._pass, "dataloader": self.dataloader.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._pass = int(state["pass"])
        if self._pass > 0:  # the first pass, and with it the sampler's starting skip, lies behind
            self.dataloader.forget_start_skip()
        self.dataloader.load_state_dict(state["dataloader"])

    def __iter__(self) -> Iterator:
        while self._pass < self.num_epochs:
            epoch = self._first_epoch + self._pass if self.reshuffle_after_epoch else self._first_epoch
            if self.dataloader.epoch != epoch:
                self.dataloader.set_epoch(epoch)
            yield from self.dataloader
            self._pass += 1
            self.dataloader.forget_start_skip()
        self._pass = 0
