"""`app_state/raw`: what a checkpoint holds of the model, optimizer and scheduler, as a DCP Stateful.

The optimizer state is stored flattened by parameter name (``param_groups.<fqn>.lr``, ``state.<fqn>.exp_avg``),
as the reference stores it: independent of how parameters are grouped, so checkpoints move between the two and
between group layouts. Checkpoints we wrote before (``param_groups.0.lr``) still load: the loader reads the
layout from the checkpoint's metadata first (``optimizer_layout``).

Loading brings the weights and the optimizer's moments; the optimizer's hyperparameters and the schedule stay
the config's, and the checkpoint's scheduler state is read aside (as plain data, whatever scheduler wrote it)
for the executor to continue where it agrees (optim/continuation.py, optim/schedule_state.py). Until a run
starts, the scheduler and the groups' lr read as at the checkpoint's step by that rule (as the reference's
loaded app state reads); the run itself starts from the schedule as built, at its own first step.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict
from torch.distributed.checkpoint.stateful import Stateful

from modalities.checkpointing.safe_dcp import FLATTENED
from modalities.models.model_parts import as_parts
from modalities.optim.continuation import config_hyperparameters_kept, show_saved_position


class AppState(Stateful):
    """``model`` is one module or, with pipeline parallelism, this rank's list of stage modules (whose
    parameters keep their whole-model names): the state is then the union of the parts' states, each read and
    written through torch's API with its own optimizer, so DCP moves it between layouts (pp to dp and back)."""

    def __init__(self, model: nn.Module | list[nn.Module], optimizer, lr_scheduler=None):
        self.model = model
        self.model_parts: list[nn.Module] = as_parts(model)
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.optimizer_layout = FLATTENED
        # While a checkpoint is loaded (prepare_load .. end_load) the scheduler's state is not asked of DCP: it
        # was read aside as plain data, and is continued or not by the executor.
        self._loading_from: str | None = None
        self._saved_scheduler_state: dict | None = None
        self._saved_step: int | None = None

    def _options(self) -> StateDictOptions:
        return StateDictOptions(flatten_optimizer_state_dict=self.optimizer_layout == FLATTENED)

    def _part_optimizers(self) -> list:
        return getattr(self.optimizer, "optimizers", None) or [self.optimizer]

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"model": {}, "optimizer": {}}
        for part, optimizer in zip(self.model_parts, self._part_optimizers(), strict=True):
            model_state, optimizer_state = get_state_dict(part, optimizer, options=self._options())
            state["model"].update(model_state)
            state["optimizer"].update(optimizer_state)
        if self.lr_scheduler is not None and self._loading_from is None:
            state["lr_scheduler"] = self.lr_scheduler.state_dict()
        return state

    def prepare_load(self, folder, saved_keys) -> None:
        """Called by safe_load before DCP loads ``folder``: its scheduler state is read here, as plain data (the
        reference's folders have no progress file: the scheduler's last_epoch tells the step)."""
        from modalities.checkpointing.dcp import saved_schedule_of

        self._loading_from = str(folder)
        self._saved_scheduler_state, self._saved_step = saved_schedule_of(folder, saved_keys)

    def end_load(self) -> None:
        self._loading_from = None

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        several = len(self.model_parts) > 1
        source = self._loading_from or "the checkpoint"
        with config_hyperparameters_kept(self.optimizer, source, self._saved_scheduler_state, self._saved_step):
            for part, optimizer in zip(self.model_parts, self._part_optimizers(), strict=True):
                model_state = state_dict["model"]
                if several:  # each part takes its own parameters' entries
                    own = set(part.state_dict())
                    model_state = {name: value for name, value in model_state.items() if name in own}
                set_state_dict(part, optimizer, model_state_dict=model_state,
                               optim_state_dict=state_dict["optimizer"], options=self._options())
        if self._loading_from is None and self.lr_scheduler is not None and "lr_scheduler" in state_dict:
            self.lr_scheduler.load_state_dict(state_dict["lr_scheduler"])  # a caller's own dcp.load: as asked
        elif self._loading_from is not None:
            show_saved_position(self.lr_scheduler, self.optimizer)
        # Whatever was read, the next save is written in the current layout.
        self.optimizer_layout = FLATTENED


def get_raw_app_state(model: nn.Module, optimizer, lr_scheduler=None) -> AppState:
    return AppState(model=model, optimizer=optimizer, lr_scheduler=lr_scheduler)


def get_dcp_checkpointed_app_state(raw_app_state: AppState, checkpoint_dir_path: str) -> AppState:
    """`app_state/dcp`: the app state with model, optimizer and scheduler loaded from a checkpoint folder (ours or
    the reference's); the warm start of the reference's configs."""
    from modalities.checkpointing.layout import resolve_checkpoint
    from modalities.checkpointing.safe_dcp import safe_load

    safe_load({"app": raw_app_state}, resolve_checkpoint(checkpoint_dir_path, require_progress=False))
    return raw_app_state
