"""The interface every trainable model implements."""

from __future__ import annotations

import torch
from torch import nn


class NNModel(nn.Module):
    """A model that maps a dict of named input tensors to a dict of named output tensors.

    ``weight_decay_groups`` maps a group name (e.g. ``linear``, ``embedding``, ``layernorm``) to regular
    expressions over parameter names; optimizers use it to exclude groups from weight decay by name.
    """

    def __init__(self, seed: int | None = None, weight_decay_groups: dict[str, list[str]] | None = None):
        if seed is not None:
            torch.manual_seed(seed)
        super().__init__()
        self._weight_decay_groups = weight_decay_groups or {}

    @property
    def weight_decay_groups(self) -> dict[str, list[str]]:
        return self._weight_decay_groups

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def block_classes(self) -> tuple[type[nn.Module], ...]:
        """The classes of the repeated blocks (e.g. transformer layers), for per-block FSDP sharding and
        activation checkpointing; empty if the model has none."""
        return ()

    def get_parameters(self) -> dict[str, torch.Tensor]:
        return dict(self.named_parameters())


def tied_parameter_slots(model: nn.Module) -> list[list[tuple[nn.Module, str]]]:
    """(module, attribute) places of each parameter registered in more than one place (tied weights), so that
    operations that give every place its own tensor (``to_empty``, ``load_state_dict(assign=True)``) can tie them
    again: ``setattr(module, name, getattr(*first_place))``."""
    slots: dict[int, list[tuple[nn.Module, str]]] = {}
    for module in model.modules():
        for name, parameter in module._parameters.items():
            if parameter is not None:
                slots.setdefault(id(parameter), []).append((module, name))
    return [places for places in slots.values() if len(places) > 1]


def retie_parameters(slots: list[list[tuple[nn.Module, str]]]) -> None:
    for (owner, owner_name), *others in slots:
        for module, name in others:
            setattr(module, name, getattr(owner, owner_name))
