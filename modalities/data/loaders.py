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
    consumed). ``len()`` is the number of batches of a whole epoch.

    Contract, for B = len(batch_sampler):

    - ``len(loader)`` is B, or ``fixed_num_batches`` when given (0 <= fixed_num_batches <= B, else ValueError:
      B itself is allowed);
    - iterating yields the batch sampler's batches ``skip_num_batches`` (or the restored position) up to
      ``len(loader)``, each collated; ``skip_num_batches`` outside 0..len(loader) is a ValueError (len(loader)
      itself leaves nothing to read);
    - ``batches_consumed`` counts the batches handed out in the current epoch, the skipped ones included; a pass
      that runs to its end leaves it at 0 (the start of the same epoch), while a loop stopped right after the
      last batch leaves it at len(loader) (and the next iteration yields nothing);
    - ``load_state_dict(loader.state_dict())`` on a fresh loader of the same config continues with exactly the
      next batch; on another number of ranks, with the next samples of the same global order (see
      ``load_state_dict``).
    """

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
        if not 0 <= skip_num_batches <= resumable.num_batches():
            raise ValueError(
                f"data loader '{dataloader_tag}': skip_num_batches ({skip_num_batches}) must lie in "
                f"0..{resumable.num_batches()}, the batches of an epoch"
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
        """The epoch the next iteration reads (its sampler's ``set_epoch``)."""
        return self._epoch

    @property
    def batches_consumed(self) -> int:
        """Batches of the current epoch handed out so far."""
        return self._batches_consumed

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its first batch (its sampler permutes by seed + epoch); ``len()`` is then
        that epoch's."""
        self._point_sampler_at(epoch)
        self._batches_consumed = 0

    def _point_sampler_at(self, epoch: int) -> None:
        """The epoch read next, also in the sampler: its length (and so the loader's) depends on the epoch."""
        self._epoch = epoch
        sampler = self._resumable.sampler
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)

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
        """The position: tag, epoch, batches consumed of it, the sample of the epoch's global order they count
        from (``start_sample``), the part of that the config skipped, and the ranks and batch size that consumed
        them. Plain ints and strings."""
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
        sample order: the samples that all ranks consumed become the sampler's starting skip.

        ValueError (naming the loader) for: another loader's state; a config skip other than the saved one; a
        position of other ranks with fixed_num_batches, without a batch size, with a sampler that cannot start
        mid-epoch, or beyond the epoch's samples; consumed batches outside 0..len(loader). A position of other
        ranks right after their last batch of the epoch, where padding or a short last batch made them count
        more samples than the epoch held, is the end of that epoch. A refused state leaves the loader as it was."""
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
        last_step = 1  # how far past the epoch's samples a position may count: not at all
        if saved_replicas is not None and saved_replicas != replicas:
            if self._resumable.stop is not None:
                raise ValueError(
                    f"data loader '{tag}': fixed_num_batches counts batches per rank, so a position saved by "
                    f"{saved_replicas} ranks cannot move to {replicas}; resume with {saved_replicas} ranks"
                )
            if state.get("batch_size") is None:
                raise ValueError(f"data loader '{tag}': the saved position does not record its batch size")
            # the saved ranks' last step may count padding or a short batch as samples: less than a step
            last_step = int(state["batch_size"]) * int(saved_replicas)
            start += batches * last_step
            batches = 0
        sampler = self._resumable.sampler
        before = (self._epoch, getattr(sampler, "start_epoch", None), getattr(sampler, "skip_num_global_samples", None))
        if start != self._skip_in_epoch(epoch):
            self._start_epoch_at(epoch, start, saved_replicas, last_step)
        self._point_sampler_at(epoch)
        num_batches = len(self)
        if not 0 <= batches <= num_batches:
            self._restore(*before)
            raise ValueError(f"data loader '{tag}': {batches} consumed batches do not fit an epoch of {num_batches}")
        self._batches_consumed = batches

    def _restore(self, epoch: int, start_epoch, skip) -> None:
        """Put back what a refused load_state_dict changed: the loader is left as it was."""
        sampler = self._resumable.sampler
        if start_epoch is not None:
            sampler.start_epoch, sampler.skip_num_global_samples = start_epoch, skip
        self._point_sampler_at(epoch)

    def _start_epoch_at(self, epoch: int, start: int, saved_replicas, last_step: int) -> None:
        sampler = self._resumable.sampler
        if not all(hasattr(sampler, name) for name in ("skip_num_global_samples", "start_epoch", "dataset")):
            raise ValueError(
                f"data loader '{self.dataloader_tag}': its sampler ({type(sampler).__name__}) cannot start an epoch "
                f"at sample {start}, which a position saved by {saved_replicas} ranks needs here; use "
                "sampler/resumable_distributed_sampler, or resume with the saved number of ranks"
            )
        if start >= len(sampler.dataset) + last_step:
            raise ValueError(
                f"data loader '{self.dataloader_tag}': the saved position, sample {start} of epoch {epoch}, lies "
                f"beyond the dataset's {len(sampler.dataset)} samples"
            )
        sampler.start_epoch = epoch
        sampler.skip_num_global_samples = min(start, len(sampler.dataset))

    def __iter__(self):
        self._point_sampler_at(self._epoch)
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
    start + e, otherwise every pass repeats the first order.

    ``len()`` is num_epochs x len(loader), each pass counted as long as the loader's current one (0 for 0
    epochs). The sampler's starting skip shortens the first pass only: a later pass, of the same epoch or
    another, reads the epoch whole. ``state_dict`` is the pass and the loader's position in it; a finished
    iteration starts over from the first pass.
    """

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
