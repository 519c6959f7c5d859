"""The training loop: Trainer (steps with gradient accumulation), Evaluator, and Gym (intervals, checkpoints).

Per micro-batch there is no host sync: losses accumulate in a device tensor. Once per optimizer step the loss
(summed over ranks) is read to stop on a NaN/inf before the optimizer applies it.
"""

from __future__ import annotations

import random
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from modalities.batch import EvaluationResultBatch, InferenceResultBatch
from modalities.logging.broker import ExperimentStatus, MessageBroker
from modalities.models.model_parts import as_parts
from modalities.training.failures import (
    AFTER_STEP,
    BEFORE,
    CLIPPING,
    FORWARD,
    LOSS,
    OPTIMIZER,
    SAVING,
    SCHEDULER,
    STATE_LEFT,
    TrainingFailed,
    all_failed_alike,
    describe,
    failure_group,
    settle,
    test_hook_fail,
    what_was_saved,
)
from modalities.training.run import TrainingProgress
from modalities.training.step_inputs import loss_parallel_context, model_inputs, plain_tensor, scale_loss_in_backward

# Test hook: after this step, wait (up to 5 minutes) until a stop signal arrives, so a test can signal a run at a
# known step on any machine, however fast.
WAIT_FOR_SIGNAL_ENV = "MODALITIES_TEST_WAIT_FOR_SIGNAL_AT_STEP"


def _test_hook_wait_for_signal(step: int, stop_signals) -> None:
    import os

    if stop_signals is None or os.environ.get(WAIT_FOR_SIGNAL_ENV) != str(step):
        return
    print(f"[test hook] waiting for a signal after step {step}", flush=True)
    deadline = time.monotonic() + 300
    while stop_signals.requested is None and time.monotonic() < deadline:
        time.sleep(0.05)


class NonFiniteLossError(RuntimeError):
    pass


class DataExhaustedError(RuntimeError):
    pass


@dataclass
class LoopSettings:
    gradient_accumulation_steps: int
    num_target_steps: int
    training_log_interval_in_steps: int
    evaluation_interval_in_steps: int
    checkpointing_interval_in_steps: int
    train_dataloader_tag: str = "train"
    extra_progress: dict[str, Any] = field(default_factory=dict)


def capture_rng_state() -> dict[str, Any]:
    # Only tensors and plain values, so that the rank file loads with torch.load(weights_only=True).
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    numpy_state = (kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached_gaussian))
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, position, has_gauss, cached_gaussian = state["numpy"]
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)  # a tensor, or an older ndarray
    np.random.set_state((kind, keys.astype(np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss is KiB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor)
    return tensor


def _set_gradient_sync(model: nn.Module, enabled: bool) -> None:
    setter = getattr(model, "set_requires_gradient_sync", None)  # FSDP2 models
    if setter is not None:
        setter(enabled)


def _set_mode(model_parts: list[nn.Module], train: bool) -> None:
    for part in model_parts:
        part.train(train)


class Evaluator:
    """Mean loss per eval loader, weighted by samples over all ranks.

    ``count_weight``: how much this rank's samples count: 1 / the ranks that compute the same batch's loss
    (tensor-parallel peers), so every sample counts once. ``holds_loss``: False on a pipeline stage before the
    last, whose step gives what its stages add to the loss (MoE auxiliary losses) or nothing, and whose samples
    are counted by the last stage."""

    def __init__(self, model_parts: nn.Module | list[nn.Module], loss_fn, device: torch.device,
                 broker: MessageBroker, pipelined_step=None, count_weight: float = 1.0, loss_parallel: bool = False,
                 context_parallel=None, holds_loss: bool = True):
        self.model_parts = as_parts(model_parts)
        self.loss_fn = loss_fn
        self.device = device
        self.broker = broker
        self.pipelined_step = pipelined_step
        self.count_weight = count_weight
        self.holds_loss = holds_loss
        self.loss_parallel = loss_parallel
        self.context_parallel = context_parallel

    def _loss(self, batch) -> torch.Tensor | None:
        if self.pipelined_step is not None:
            return self.pipelined_step.run(batch, accumulation_steps=1, train=False)
        with model_inputs(batch, self.context_parallel) as (samples, targets), \
                loss_parallel_context(self.loss_parallel):
            predictions = self.model_parts[0](samples)
            return plain_tensor(self.loss_fn(InferenceResultBatch(targets=targets, predictions=predictions)))

    @torch.no_grad()
    def evaluate(self, eval_loaders: list, num_train_steps_done: int) -> list[EvaluationResultBatch]:
        results = []
        _set_mode(self.model_parts, train=False)
        try:
            for index, loader in enumerate(eval_loaders):
                tag = getattr(loader, "dataloader_tag", None) or f"eval_{index}"
                try:
                    num_batches = len(loader)
                except TypeError:
                    num_batches = None
                self.broker.publish_progress(num_train_steps_done, ExperimentStatus.EVALUATION, tag, 0, num_batches)
                started = time.perf_counter()
                totals = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss*samples, samples, tokens
                for done, batch in enumerate(loader, start=1):
                    batch = batch.to(self.device, non_blocking=True)
                    loss = self._loss(batch)
                    if loss is not None:
                        num_samples = len(batch) * self.count_weight
                        counted = num_samples if self.holds_loss else 0.0
                        num_tokens = next(iter(batch.samples.values())).numel() * self.count_weight * self.holds_loss
                        totals += torch.stack([loss.detach().double() * num_samples, totals.new_tensor(counted),
                                               totals.new_tensor(num_tokens)])
                    self.broker.publish_progress(
                        num_train_steps_done, ExperimentStatus.EVALUATION, tag, done, num_batches
                    )
                loss_sum, num_samples, num_tokens = _all_reduce_sum(totals).tolist()
                elapsed = time.perf_counter() - started
                result = EvaluationResultBatch(
                    dataloader_tag=tag,
                    num_train_steps_done=num_train_steps_done,
                    losses={"loss avg": loss_sum / num_samples if num_samples else float("nan")},
                    throughput_metrics={"tokens/s": num_tokens / elapsed if elapsed > 0 else None},
                )
                self.broker.publish_result(result)
                results.append(result)
        finally:
            _set_mode(self.model_parts, train=True)
        return results


class _LogInterval:
    """The sums over the steps since the last training log line."""

    def __init__(self, device: torch.device):
        self.sums = torch.zeros(2, device=device)  # step losses and grad norms
        self.steps = self.samples = self.tokens = 0
        self.started = time.perf_counter()

    def add(self, step_values: torch.Tensor, samples: int, tokens: int) -> None:
        self.sums += step_values[:2]
        self.steps += 1
        self.samples += samples
        self.tokens += tokens

    def restart_clock(self) -> None:
        self.started = time.perf_counter()

    def take(self, step_values: torch.Tensor) -> tuple:
        """(loss avg, loss last, norm avg, norm last, tokens/s, samples/s) of the interval; starts the next."""
        elapsed = time.perf_counter() - self.started
        (loss_sum, norm_sum), (_, last_norm, last_loss) = self.sums.tolist(), step_values.tolist()
        values = (loss_sum / self.steps, last_loss, norm_sum / self.steps, last_norm, self.tokens / elapsed,
                  self.samples / elapsed)
        self.sums.zero_()
        self.steps = self.samples = self.tokens = 0
        self.restart_clock()
        return values


class Gym:
    """Runs optimizer steps until the target, evaluating, logging and checkpointing at their intervals."""

    def __init__(
        self,
        app_state,
        loss_fn,
        gradient_clipper,
        device: torch.device,
        broker: MessageBroker,
        settings: LoopSettings,
        mfu_calculator=None,
        checkpoint_saving=None,
        config_text: str | None = None,
        profiler=None,
        stop_signals=None,
        data_parallel_degree: int | None = None,
        scheduled_pipeline=None,
        loss_parallel: bool = False,
        context_parallel_mesh=None,
        context_parallel_load_balancer: str | None = "headtail",
        model_statistics=None,
    ):
        # Metrics a model reports at each logging step (e.g. MoE routing: models/moe/statistics.py); collective.
        self.model_statistics = model_statistics
        self.stop_signals = stop_signals  # a StopSignals: a signal asks the loop to stop after the current step
        self.profiler = profiler  # a steppable profiler (steppable_profiler/*): entered for the loop, stepped per step
        self.app_state = app_state
        self.model_parts: list[nn.Module] = app_state.model_parts
        self.optimizer = app_state.optimizer
        self.lr_scheduler = app_state.lr_scheduler
        self.loss_fn = loss_fn
        self.gradient_clipper = gradient_clipper
        self.device = device
        self.broker = broker
        self.settings = settings
        self.mfu_calculator = mfu_calculator
        self.checkpoint_saving = checkpoint_saving
        self.config_text = config_text  # the resolved config, saved into every checkpoint
        self.world_size = dist.get_world_size() if dist.is_initialized() else 1
        # Ranks reading different data: samples and tokens seen count these (tensor-parallel peers read alike).
        self.data_parallel_degree = data_parallel_degree or self.world_size
        self.loss_parallel = loss_parallel
        self.context_parallel = None
        if context_parallel_mesh is not None:
            from modalities.training.context_parallel import ContextParallel

            self.context_parallel = ContextParallel(context_parallel_mesh, context_parallel_load_balancer)
        # With pipeline parallelism the loss exists on the last stage's ranks only: losses are averaged over them.
        self.pipelined_step = None
        self.loss_ranks = self.world_size
        holds_loss = True
        if scheduled_pipeline is not None:
            from modalities.training.pipeline import PipelinedStep

            self.pipelined_step = PipelinedStep(scheduled_pipeline, loss_parallel, self.context_parallel)
            self.loss_ranks = self.world_size // scheduled_pipeline.pp_stages[0].group_size
            holds_loss = scheduled_pipeline.has_last_stage
        self.evaluator = Evaluator(self.model_parts, loss_fn, device, broker, self.pipelined_step,
                                   self.data_parallel_degree / self.loss_ranks, loss_parallel, self.context_parallel,
                                   holds_loss)
        self.last_checkpoint: str | None = None
        self._saved_step: int | None = None  # the step of last_checkpoint
        self._phase = FORWARD  # the part of the step under way (training/failures.py)
        self._failure_group = None

    # -- checkpoints -----------------------------------------------------------------------------------------

    def _rank_state(self, progress: TrainingProgress, train_loader) -> dict[str, Any]:
        """What a checkpoint of this rank holds besides model and optimizer: data position and RNG states."""
        return {
            "rng": capture_rng_state(),
            "train_dataloader": train_loader.state_dict() if hasattr(train_loader, "state_dict") else None,
            "train_batches_consumed": progress.train_batches_consumed,
        }

    def _save_checkpoint(self, progress: TrainingProgress, train_loader, force: bool = False,
                         rank_state: dict[str, Any] | None = None) -> None:
        if self.checkpoint_saving is None:
            return
        self._phase = SAVING
        rank_state = rank_state if rank_state is not None else self._rank_state(progress, train_loader)
        extra = {"world_size": self.world_size, **self.settings.extra_progress}
        kwargs = {"force": True} if force else {}
        saved = self.checkpoint_saving.save_checkpoint(
            progress.as_dict(**extra), self.app_state, rank_state, self.config_text, **kwargs
        )
        if saved is not None:
            self.last_checkpoint, self._saved_step = saved, progress.num_seen_steps

    # -- the loop --------------------------------------------------------------------------------------------

    def run(
        self,
        train_loader,
        eval_loaders: list,
        progress: TrainingProgress,
        restore_rank_state: Callable[[], Any] | None = None,
    ) -> TrainingProgress:
        if self.profiler is None:
            return self._run(train_loader, eval_loaders, progress, restore_rank_state)
        with self.profiler:
            return self._run(train_loader, eval_loaders, progress, restore_rank_state)

    def _run(self, train_loader, eval_loaders: list, progress: TrainingProgress, restore_rank_state) -> TrainingProgress:
        from modalities.training.signals import TrainingStopped

        # A resumed run gets its iterator already positioned, with the RNG states restored after creating it.
        data = restore_rank_state() if restore_rank_state is not None else iter(train_loader)
        _set_mode(self.model_parts, train=True)
        log = _LogInterval(self.device)
        self._failure_group = failure_group() if self.checkpoint_saving is not None else None
        while progress.num_seen_steps < self.settings.num_target_steps:
            # What a checkpoint of the step before holds, kept until this step changes the weights.
            before = (progress.model_copy(), self._rank_state(progress, train_loader)) if self.checkpoint_saving \
                else None
            try:
                step_values, stop_requested, samples, tokens = self._step(data, progress)
                self._phase = AFTER_STEP
                log.add(step_values, samples * self.data_parallel_degree, tokens * self.data_parallel_degree)
                self._after_step(progress, step_values, stop_requested, log, train_loader, eval_loaders)
            except TrainingStopped:
                raise
            except Exception as error:  # noqa: BLE001 - every failure ends in _failed, which raises
                self._failed(error, progress, before, train_loader)
        return progress

    def _step(self, data, progress: TrainingProgress) -> tuple[torch.Tensor, float, int, int]:
        """One optimizer step: its micro-batches, clipping, the loss over ranks (stopping on NaN), the update and
        the schedule. Returns (loss, grad norm, last micro-batch's loss), whether a stop was asked for, and this
        rank's samples and tokens."""
        s = self.settings
        acc = s.gradient_accumulation_steps
        step = progress.num_seen_steps + 1
        self._phase = FORWARD
        step_loss = torch.zeros((), device=self.device)
        last_micro_loss = torch.zeros((), device=self.device)
        local_samples = local_tokens = 0
        for micro_step in range(acc):
            try:
                batch = next(data)
            except StopIteration:
                raise DataExhaustedError(
                    f"train_dataloader ran out of data after {progress.num_seen_steps} steps "
                    f"(target: {s.num_target_steps}); lower settings.training_target or add data"
                ) from None
            progress.train_batches_consumed += 1
            batch = batch.to(self.device, non_blocking=True)
            test_hook_fail(step, "forward")
            loss = self._forward_backward(batch, last_micro_step=micro_step == acc - 1)
            if loss is not None:  # None: a pipeline stage before the last that adds nothing to the loss
                step_loss += loss
                last_micro_loss = loss
            local_samples += len(batch)
            local_tokens += next(iter(batch.samples.values())).numel()
        step_loss /= acc

        self._phase = CLIPPING
        grad_norm = self.gradient_clipper.clip_gradients() if self.gradient_clipper is not None else None
        norm = (grad_norm.detach().float().reshape(()) if isinstance(grad_norm, torch.Tensor)
                else step_loss.new_zeros(()))
        # One host sync per step: the loss summed over ranks, so every rank stops at the same NaN, and with it
        # whether any rank was asked to stop (by a signal), so every rank stops after the same step.
        self._phase = LOSS
        stop_flag = 1.0 if self.stop_signals is not None and self.stop_signals.requested else 0.0
        reduced = _all_reduce_sum(torch.stack([step_loss, step_loss.new_tensor(stop_flag), last_micro_loss]))
        global_loss = reduced[0] / self.loss_ranks
        # "train loss last" is the last micro-batch's loss (over ranks), as the reference logs it; the
        # interval's "train loss avg" is the mean over its micro-batches (= over its steps' means).
        step_values = torch.stack([global_loss, norm.to(global_loss.device), reduced[2] / self.loss_ranks])
        finite, stop_requested = torch.stack([torch.isfinite(global_loss).float(), reduced[1]]).tolist()
        if not finite:
            raise NonFiniteLossError(f"the training loss is {float(step_values[0])} at step {step}")

        self._phase = OPTIMIZER
        test_hook_fail(step, "optimizer")
        self.optimizer.step()
        progress.num_seen_steps += 1  # the weights are those of this step now
        progress.num_seen_samples += local_samples * self.data_parallel_degree
        progress.global_num_seen_tokens += local_tokens * self.data_parallel_degree
        self._phase = SCHEDULER
        if self.lr_scheduler is not None:
            self.lr_scheduler.step()
        test_hook_fail(step, "scheduler")
        self.optimizer.zero_grad(set_to_none=True)
        return step_values, stop_requested, local_samples, local_tokens

    def _after_step(self, progress: TrainingProgress, step_values: torch.Tensor, stop_requested: float,
                    log: _LogInterval, train_loader, eval_loaders: list) -> None:
        s = self.settings
        step = progress.num_seen_steps
        if self.profiler is not None:
            self.profiler.step()
        self.broker.publish_progress(step, ExperimentStatus.TRAIN, s.train_dataloader_tag)
        if step % s.training_log_interval_in_steps == 0 or step == s.num_target_steps:
            self._publish_training_result(step, *log.take(step_values), progress)
        if eval_loaders and step % s.evaluation_interval_in_steps == 0:
            test_hook_fail(step, "evaluation")
            self.evaluator.evaluate(eval_loaders, step)
            log.restart_clock()
        saved_now = step % s.checkpointing_interval_in_steps == 0
        if saved_now:
            self._save_checkpoint(progress, train_loader)
            self._phase = AFTER_STEP
            log.restart_clock()
        _test_hook_wait_for_signal(step, self.stop_signals)
        if stop_requested and step < s.num_target_steps:
            if not saved_now:
                self._save_checkpoint(progress, train_loader, force=True)
            self._stopped(progress)

    def _failed(self, error: Exception, progress: TrainingProgress, before, train_loader) -> NoReturn:
        """End the run on an exception in the loop, after saving what is consistent (training/failures.py)."""
        phase = self._phase
        step = progress.num_seen_steps + (1 if STATE_LEFT.get(phase) == BEFORE or phase == OPTIMIZER else 0)
        state_left = STATE_LEFT.get(phase)
        if state_left == BEFORE and before is not None:
            to_save, rank_state = before
        else:
            to_save, rank_state = progress, None
        agreed = state_left is not None and self.checkpoint_saving is not None and \
            all_failed_alike(self._failure_group, step, phase)
        saved, save_error = None, None
        if agreed and self._saved_step == to_save.num_seen_steps:
            saved = self.last_checkpoint
        elif agreed:
            try:
                settle(self.model_parts, self.optimizer)
                self._save_checkpoint(to_save, train_loader, force=True, rank_state=rank_state)
                saved = self.last_checkpoint if self._saved_step == to_save.num_seen_steps else None
            except Exception as e:  # noqa: BLE001 - reported with the failure it follows
                save_error = e
        kept = what_was_saved(phase, saved, to_save.num_seen_steps, self.last_checkpoint, agreed, save_error,
                              self.checkpoint_saving is not None)
        if isinstance(error, (NonFiniteLossError, DataExhaustedError)):
            raise type(error)(f"{error}; training stopped; {kept}") from None
        raise TrainingFailed(f"{describe(error, step, phase)}; {kept}", step, saved) from error

    def _forward_backward(self, batch, last_micro_step: bool) -> torch.Tensor | None:
        """One micro-batch's forward and backward (its gradient divided by the accumulation steps); its loss."""
        acc = self.settings.gradient_accumulation_steps
        if self.pipelined_step is not None:
            return self.pipelined_step.run(batch, accumulation_steps=acc)
        model = self.model_parts[0]
        _set_gradient_sync(model, last_micro_step)
        scale_loss_in_backward(self.loss_fn, 1 / acc)
        with model_inputs(batch, self.context_parallel) as (samples, targets), \
                loss_parallel_context(self.loss_parallel):
            predictions = model(samples)
            loss = self.loss_fn(InferenceResultBatch(targets=targets, predictions=predictions))
            (loss / acc).backward()
        return plain_tensor(loss.detach())

    def _stopped(self, progress: TrainingProgress) -> None:
        from modalities.training.signals import TrainingStopped

        own = self.stop_signals.requested if self.stop_signals is not None else None
        # last_checkpoint is this step's (saved at its interval or just now), or None when the strategy saves none.
        raise TrainingStopped(own or "a signal to another rank", progress.num_seen_steps, self.last_checkpoint)

    def _publish_training_result(
        self, step, loss_avg, loss_last, norm_avg, norm_last, tokens_per_s, samples_per_s, progress
    ) -> None:
        mfu = None
        # On CPU only a peak the config gives counts (the table's is a GPU's).
        explicit_peak = getattr(self.mfu_calculator, "peak_source", None) == "config"
        if self.mfu_calculator is not None and (self.device.type == "cuda" or explicit_peak):
            value = self.mfu_calculator.compute(samples_per_s)  # the global rate: the calculator divides by world_size
            mfu = float(value) if value is not None else None
        lrs = [group["lr"] for group in self.optimizer.param_groups]
        model_metrics = self.model_statistics.metrics(self.device) if self.model_statistics is not None else {}
        result = EvaluationResultBatch(
            dataloader_tag=self.settings.train_dataloader_tag,
            num_train_steps_done=step,
            losses={"train loss avg": loss_avg, "train loss last": loss_last},
            metrics={
                "consumed tokens": progress.global_num_seen_tokens,
                "grad norm avg": norm_avg,
                "grad norm last": norm_last,
                "lr mean": float(sum(lrs) / len(lrs)),
                **model_metrics,
            },
            throughput_metrics={
                "tokens/s": tokens_per_s,
                "samples/s": samples_per_s,
                "mfu": mfu,
                "peak memory MB": peak_memory_mb(self.device),
            },
        )
        self.broker.publish_result(result)
