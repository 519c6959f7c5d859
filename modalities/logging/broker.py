"""The message broker: the training loop publishes progress and results; subscribers consume them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol


class MessageType(Enum):
    PROGRESS = "progress"
    RESULT = "result"
    # payload: RunInfo, once, before the first step; delivered to subscribers with receives_run_start = True
    RUN_START = "run_start"


class ExperimentStatus(Enum):
    TRAIN = "train"
    EVALUATION = "evaluation"


@dataclass
class ProgressUpdate:
    num_steps_done: int
    experiment_status: ExperimentStatus
    dataloader_tag: str
    # While evaluating: batches of this loader done so far, and in all (None when the loader has no length).
    num_batches_done: int | None = None
    num_batches_total: int | None = None


@dataclass
class RunInfo:
    """What a run is, told to every subscriber before its first step (the start banner prints the same)."""

    experiment_id: str
    experiment_folder: Path
    config: dict  # the resolved config (plain values)
    config_text: str  # the same as YAML, as saved beside the results
    world_size: int
    device: str  # "cpu", "cuda"
    mesh: str | None  # e.g. "dp_shard=2"
    num_parameters: int  # the whole model's
    num_parameters_per_rank: tuple[int, int]  # fewest and most any rank holds
    samples_per_step: int
    tokens_per_step: int
    sequence_length: int
    micro_batch_size: int
    gradient_accumulation_steps: int
    dp_degree: int
    num_seen_steps: int  # where the run starts (a resumed run: the checkpoint's step)
    num_seen_tokens: int
    num_target_steps: int
    num_target_tokens: int | None
    dataset_samples: int | None  # samples in the train dataset, when it has a length
    resumed_from: str | None  # the checkpoint folder a resumed run continues from
    # Parameters a token uses, where fewer than all (a mixture of experts runs top_k of its experts); else None.
    num_active_parameters: int | None = None


@dataclass
class Message:
    message_type: MessageType
    payload: Any  # ProgressUpdate, modalities.batch.EvaluationResultBatch or RunInfo
    global_rank: int = 0


class MessageSubscriber(Protocol):
    def consume_message(self, message: Message) -> None: ...

    def close(self) -> None: ...


class MessageBroker:
    def __init__(self) -> None:
        self._subscribers: dict[MessageType, list[MessageSubscriber]] = {t: [] for t in MessageType}

    def add_subscriber(self, subscriber: MessageSubscriber, *message_types: MessageType) -> None:
        for message_type in message_types or tuple(MessageType):
            if subscriber not in self._subscribers[message_type]:
                self._subscribers[message_type].append(subscriber)

    def distribute_message(self, message: Message) -> None:
        for subscriber in self._subscribers[message.message_type]:
            subscriber.consume_message(message)

    def publish_progress(
        self,
        num_steps_done: int,
        status: ExperimentStatus,
        dataloader_tag: str,
        num_batches_done: int | None = None,
        num_batches_total: int | None = None,
    ) -> None:
        update = ProgressUpdate(num_steps_done, status, dataloader_tag, num_batches_done, num_batches_total)
        self.distribute_message(Message(MessageType.PROGRESS, update))

    def publish_run_start(self, info: RunInfo) -> None:
        self.distribute_message(Message(MessageType.RUN_START, info))

    def publish_result(self, result) -> None:
        self.distribute_message(Message(MessageType.RESULT, result))

    def close(self) -> None:
        seen: set[int] = set()
        for subscribers in self._subscribers.values():
            for subscriber in subscribers:
                if id(subscriber) not in seen:
                    seen.add(id(subscriber))
                    subscriber.close()
