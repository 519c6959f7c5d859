"""`checkpoint_saving/default` and its strategies: when to save, and which older checkpoints to delete."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class CheckpointingInstruction:
    save_current: bool
    checkpoints_to_delete: list[int] = field(default_factory=list)  # by num_seen_steps


class SaveEveryKStepsCheckpointingStrategy:
    def __init__(self, k: int):
        self.k = k

    def get_checkpoint_instruction(self, num_seen_steps: int, force: bool = False) -> CheckpointingInstruction:
        return CheckpointingInstruction(save_current=force or num_seen_steps % self.k == 0)


class SaveKMostRecentCheckpointsStrategy:
    def __init__(self, k: int):
        self.k = k
        self.saved_steps: list[int] = []  # most recent last

    def get_checkpoint_instruction(self, num_seen_steps: int, force: bool = False) -> CheckpointingInstruction:
        # Called at every checkpointing interval, so `force` (a stop between intervals) changes nothing here.
        if self.k == 0:
            return CheckpointingInstruction(save_current=False)
        if num_seen_steps in self.saved_steps:
            return CheckpointingInstruction(save_current=False)
        self.saved_steps.append(num_seen_steps)
        to_delete: list[int] = []
        if self.k > 0 and len(self.saved_steps) > self.k:
            to_delete = self.saved_steps[: -self.k]
            self.saved_steps = self.saved_steps[-self.k :]
        return CheckpointingInstruction(save_current=True, checkpoints_to_delete=to_delete)


class CheckpointSaving:
    def __init__(self, checkpoint_saving_strategy, checkpoint_saving_execution):
        self.strategy = checkpoint_saving_strategy
        self.execution = checkpoint_saving_execution

    def save_checkpoint(
        self,
        progress: dict[str, int],
        app_state,
        rank_state: dict[str, Any],
        config_text: str | None = None,
        force: bool = False,
    ) -> str | None:
        """Save if the strategy says so (``force``: also between its intervals, as when the run is stopped);
        returns the path of the new checkpoint (or None)."""
        try:
            instruction = self.strategy.get_checkpoint_instruction(progress["num_seen_steps"], force=force)
        except TypeError:  # a user's strategy without `force`
            instruction = self.strategy.get_checkpoint_instruction(progress["num_seen_steps"])
        saved = None
        if instruction.save_current:
            saved = self.execution.save(progress, app_state, rank_state, config_text)
        # Older checkpoints go only after the new one is complete and `latest` points to it.
        for steps in instruction.checkpoints_to_delete:
            self.execution.delete(steps)
        return saved

    @property
    def checkpoints_dir(self):
        return self.execution.checkpoints_dir
