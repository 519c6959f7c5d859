"""The message broker: the training loop publishes progress and results; subscribers consume them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol


class MessageType(Enum):
    PROGRESS = "progress"
    RESULT = "result"


class ExperimentStatus(Enum):
    TRAIN = "train"
    EVALUATION = "evaluation"


@dataclass
class ProgressUpdate:
    num_steps_done: int
    experiment_status: ExperimentStatus
    dataloader_tag: str


@dataclass
class Message:
    message_type: MessageType
    payload: Any  # ProgressUpdate or modalities.batch.EvaluationResultBatch
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

    def publish_progress(self, num_steps_done: int, status: ExperimentStatus, dataloader_tag: str) -> None:
        self.distribute_message(Message(MessageType.PROGRESS, ProgressUpdate(num_steps_done, status, dataloader_tag)))

    def publish_result(self, result) -> None:
        self.distribute_message(Message(MessageType.RESULT, result))

    def close(self) -> None:
        seen: set[int] = set()
        for subscribers in self._subscribers.values():
            for subscriber in subscribers:
                if id(subscriber) not in seen:
                    seen.add(id(subscriber))
                    subscriber.close()
