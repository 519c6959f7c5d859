"""The batch types that flow between data loaders, models and losses.

Plain dataclasses of tensors keyed by name; torch is imported only inside methods, so configs can mention
the keys without pulling torch in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass
class DatasetBatch:
    """What a collate function returns: model inputs in ``samples``, training targets in ``targets``."""

    samples: dict[str, "torch.Tensor"]
    targets: dict[str, "torch.Tensor"]
    batch_dim: int = 0

    def to(self, device: Any, non_blocking: bool = False) -> "DatasetBatch":
        return DatasetBatch(
            samples={k: v.to(device, non_blocking=non_blocking) for k, v in self.samples.items()},
            targets={k: v.to(device, non_blocking=non_blocking) for k, v in self.targets.items()},
            batch_dim=self.batch_dim,
        )

    def pin_memory(self) -> "DatasetBatch":
        return DatasetBatch(
            samples={k: v.pin_memory() for k, v in self.samples.items()},
            targets={k: v.pin_memory() for k, v in self.targets.items()},
            batch_dim=self.batch_dim,
        )

    def __len__(self) -> int:
        first = next(iter(self.samples.values()))
        return first.shape[self.batch_dim]


@dataclass
class InferenceResultBatch:
    """What a loss function receives: the model's outputs beside the batch's targets."""

    targets: dict[str, "torch.Tensor"]
    predictions: dict[str, "torch.Tensor"]
    batch_dim: int = 0

    def get_predictions(self, key: str) -> "torch.Tensor":
        if key not in self.predictions:
            raise KeyError(f"the model's output has no key '{key}' (it has: {sorted(self.predictions)})")
        return self.predictions[key]

    def get_targets(self, key: str) -> "torch.Tensor":
        if key not in self.targets:
            raise KeyError(f"the batch has no target '{key}' (it has: {sorted(self.targets)})")
        return self.targets[key]


@dataclass
class EvaluationResultBatch:
    """Losses and metrics of one evaluation (or training) interval, as published to subscribers."""

    dataloader_tag: str
    num_train_steps_done: int
    losses: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    throughput_metrics: dict[str, float] = field(default_factory=dict)
