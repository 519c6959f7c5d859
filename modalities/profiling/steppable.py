"""Things a profiler steps through: a random batch generator and a forward (and backward) pass."""

from __future__ import annotations

import torch
from torch import nn

from modalities.batch import DatasetBatch, InferenceResultBatch

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "int64": torch.int64}


class RandomDatasetBatchGenerator:
    """``dataset_batch_generator/random``: `input_ids` and `target_ids` of shape ``dims.values()``."""

    def __init__(self, dims: dict[str, int], data_type: str, min_val: int, max_val: int):
        self.shape = tuple(dims.values())
        self.dtype = _DTYPES[getattr(data_type, "value", data_type)]
        self.min_val, self.max_val = min_val, max_val
        self.device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")

    def _tensor(self) -> torch.Tensor:
        if self.dtype == torch.int64:
            return torch.randint(self.min_val, self.max_val, self.shape, device=self.device)
        return torch.rand(self.shape, device=self.device, dtype=self.dtype) * (self.max_val - self.min_val) + self.min_val

    def get_dataset_batch(self) -> DatasetBatch:
        return DatasetBatch(samples={"input_ids": self._tensor()}, targets={"target_ids": self._tensor()})


class SteppableForwardPass:
    """``steppable_component/forward_pass``: each step runs the model on a new batch; with a loss also backward,
    with an optimizer also a step."""

    def __init__(self, model: nn.Module, dataset_batch_generator, loss_fn=None, optimizer=None):
        self.model, self.dataset_batch_generator = model, dataset_batch_generator
        self.loss_fn, self.optimizer = loss_fn, optimizer

    def step(self) -> None:
        batch = self.dataset_batch_generator.get_dataset_batch()
        predictions = self.model(batch.samples)
        if self.loss_fn is None:
            return
        loss = self.loss_fn(InferenceResultBatch(targets=batch.targets, predictions=predictions))
        loss.backward()
        if self.optimizer is not None:
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)


def run_profiling(steppable_component, profiler) -> int:
    """Step the component ``len(profiler)`` times under the profiler; returns the number of steps."""
    steps = len(profiler)
    if steps < 0:
        raise ValueError("the profiler does not say how many steps it needs (no_profiler without num_steps)")
    with profiler:
        for _ in range(steps):
            steppable_component.step()
            profiler.step()
    return steps
