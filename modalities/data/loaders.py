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

    def _sampler_skip(self) -> int:
        """Samples the sampler leaves out at the start of its first epoch (Modalities' way of restarting)."""
        return int(getattr(self._resumable.sampler, "skip_num_global_samples", 0) or 0)

    def _sampler_start_epoch(self) -> int:
        return int(getattr(self._resumable.sampler, "start_epoch", self._epoch))

    def state_dict(self) -> dict[str, Any]:
        return {
            "dataloader_tag": self.dataloader_tag,
            "epoch": self._epoch,
            "batches_consumed": self._batches_consumed,
            # batches_consumed counts from where the sampler started, so a resume needs the same starting skip
            "sampler_skip_num_global_samples": self._sampler_skip(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("dataloader_tag", self.dataloader_tag) != self.dataloader_tag:
            raise ValueError(
                f"data loader state of '{state['dataloader_tag']}' cannot be loaded into '{self.dataloader_tag}'"
            )
        batches = int(state["batches_consumed"])
        if not 0 <= batches <= len(self):
            raise ValueError(
                f"data loader '{self.dataloader_tag}': {batches} consumed batches do not fit an epoch of {len(self)}"
            )
        epoch = int(state["epoch"])
        saved_skip = state.get("sampler_skip_num_global_samples")  # absent in states written before it was kept
        if saved_skip is not None and epoch == self._sampler_start_epoch() and int(saved_skip) != self._sampler_skip():
            raise ValueError(
                f"data loader '{self.dataloader_tag}': the saved position ({batches} batches of epoch {epoch}) counts "
                f"from sample {saved_skip}, but the sampler now skips {self._sampler_skip()} samples; resuming "
                f"restores the data position by itself, so set the sampler's skip_num_global_samples back to "
                f"{saved_skip}"
            )
        self._epoch = epoch
        self._batches_consumed = batches

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
        self.dataloader.load_state_dict(state["dataloader"])

    def __iter__(self) -> Iterator:
        while self._pass < self.num_epochs:
            epoch = self._first_epoch + self._pass if self.reshuffle_after_epoch else self._first_epoch
            if self.dataloader.epoch != epoch:
                self.dataloader.set_epoch(epoch)
            yield from self.dataloader
            self._pass += 1
        self._pass = 0
