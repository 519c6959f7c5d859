"""The run contract's checks of the target and the intervals: enough data for the target, the intervals against
the run's steps, and the step profile against the target tokens (Modalities' consistency flags decide between
warning and error)."""

from __future__ import annotations

from collections.abc import Iterator

from modalities.registry.types import Finding, NodeInfo
from modalities.training.contract.parts import WARNING, RunParts, finding, known_int


def data_for_the_target(parts: RunParts) -> Iterator[Finding]:
    """The micro-batches the target needs per rank against what the train data gives (epochs when the loader
    repeats), and its tokens against the target tokens; only for continuous packed datasets (the header says)."""
    settings = parts.run.settings
    train = parts.train_loader()
    if train is None:
        return
    datasets = parts.datasets(train)
    counts = [_samples(parts, d) for d in datasets]
    if not datasets or any(c is None for c in counts):
        return
    samples = sum(c[0] for c in counts)
    tokens = sum(c[1] for c in counts)
    batch_sampler = parts.batch_sampler(train)
    sampler = parts.sampler(batch_sampler)
    batch_size = parts.field(batch_sampler, "batch_size")
    replicas = parts.field(sampler, "num_replicas") or 1
    skip = parts.field(sampler, "skip_num_global_samples") or 0
    if not isinstance(batch_size, int) or not isinstance(replicas, int):
        return
    per_rank_batches = max(samples - skip, 0) // replicas // batch_size
    steps = parts.remaining_steps()
    accumulation = known_int(settings.step_profile.gradient_accumulation_steps)
    if steps is None or accumulation is None or not isinstance(skip, int):
        return
    needed = steps * accumulation
    if needed > per_rank_batches:
        repeats = any(
            i.component_key == "data_loader" and i.variant_key == "repeating_data_loader"
            for i in parts.chain(getattr(parts.run, "train_dataloader", None), ("dataloader",))
        )
        where = ("settings", "training_target", "num_target_steps")
        if repeats:
            epochs = needed / per_rank_batches if per_rank_batches else float("inf")
            yield finding(where, f"the target reads the train data {epochs:.2f} times ({needed} micro-batches per "
                          f"rank, {per_rank_batches} in one pass)", WARNING)
        else:
            yield finding(
                where,
                f"the target needs {needed} micro-batches per rank, but the train data gives {per_rank_batches} "
                f"({samples} samples{f' less {skip} skipped' if skip else ''}, over {replicas} rank(s), "
                f"{batch_size} per batch): the run would stop when the data runs out",
                hint="lower the target, add data, or repeat it (data_loader/repeating_data_loader)",
            )
    target_tokens = known_int(settings.training_target.num_target_tokens)
    if target_tokens is not None and tokens < target_tokens:
        yield finding(
            ("settings", "training_target", "num_target_tokens"),
            f"the train data holds {tokens} tokens, fewer than the target of {target_tokens}",
            parts.severity("enforce_enough_tokens_in_dataset"),
        )


def _samples(parts: RunParts, dataset: NodeInfo) -> tuple[int, int] | None:
    """(samples, tokens) of a continuous packed dataset, from its header alone."""
    from modalities.data.pbin_header import num_continuous_samples

    if dataset.variant_key != "packed_mem_map_dataset_continuous":
        return None
    header, length = parts.header(dataset), parts.field(dataset, "sequence_length")
    if header is None or not isinstance(length, int):
        return None
    reuse = parts.field(dataset, "reuse_last_target")
    samples = num_continuous_samples(header.num_tokens, length, True if reuse is None else reuse)
    return samples, header.num_tokens


def intervals(parts: RunParts) -> Iterator[Finding]:
    """Checkpoint and evaluation intervals longer than the run or not dividing it; a log interval longer."""
    steps = parts.remaining_steps()
    if steps is None or steps <= 0:
        return
    every = parts.run.settings.intervals
    yield from _last_step(parts, steps, known_int(every.checkpointing_interval_in_steps), "checkpointing",
                          "a checkpoint", "no checkpoint will be saved", "checkpointed")
    if isinstance(parts.run.eval_dataloaders, list) and parts.run.eval_dataloaders:
        yield from _last_step(parts, steps, known_int(every.evaluation_interval_in_steps), "evaluation",
                              "an evaluation", "nothing will be evaluated", "evaluated")
    log_every = known_int(every.training_log_interval_in_steps)
    if log_every is not None and log_every > steps:
        yield finding(
            ("settings", "intervals", "training_log_interval_in_steps"),
            f"a log line every {log_every} steps, but the run takes {steps}: only the last step is logged",
            WARNING,
        )


def _last_step(
    parts: RunParts, steps: int, every: int | None, interval: str, what: str, none_at_all: str, done: str
) -> Iterator[Finding]:
    """An interval (``settings.intervals.<interval>_interval_in_steps``) longer than the run's ``steps`` or not
    a divisor of them: nothing at all, or not the last step (``enforce_last_step_<done>`` decides the severity)."""
    field = ("settings", "intervals", f"{interval}_interval_in_steps")
    severity = parts.severity(f"enforce_last_step_{done}")
    if every is None:
        return
    if every > steps:
        yield finding(field, f"{what} every {every} steps, but the run takes {steps}: {none_at_all}", severity)
    elif steps % every:
        yield finding(field, f"the run's {steps} steps are not a multiple of {every}: the last step will not be "
                      f"{done}", severity)


def tokens_per_step(parts: RunParts) -> Iterator[Finding]:
    """The target tokens against the target steps times micro-batch x sequence length x accumulation x dp."""
    settings = parts.run.settings
    profile, target, progress = settings.step_profile, settings.training_target, settings.training_progress
    dp = known_int(profile.dp_degree)
    world = parts.world_size()
    tp = parts.model_parallel_degree()
    if dp is None:
        dp = world[0] // tp if world is not None else None
    factors = [
        known_int(profile.local_train_micro_batch_size),
        known_int(profile.sequence_length),
        known_int(profile.gradient_accumulation_steps),
        dp,
    ]
    steps, target_tokens = parts.remaining_steps(), known_int(target.num_target_tokens)
    seen_tokens = known_int(progress.global_num_seen_tokens)
    if None in factors or steps is None or steps <= 0 or target_tokens is None or seen_tokens is None:
        return
    per_step = factors[0] * factors[1] * factors[2] * factors[3]
    required = (target_tokens - seen_tokens) / steps
    if required != per_step:
        yield finding(
            ("settings", "training_target", "num_target_tokens"),
            f"{target_tokens} target tokens over {steps} steps are {required:g} tokens a step, but a "
            f"step takes {per_step} (micro-batch x sequence length x accumulation x data-parallel degree)",
            parts.severity("enforce_tokens_per_step_consistency"),
        )
