"""``optimizer/muon``: Muon for the hidden layers' matrices and AdamW for every other parameter, as one optimizer.

Muon (Jordan et al. 2024) keeps a momentum buffer per matrix and replaces each update by an approximately
orthogonal matrix of the same shape (a few Newton-Schulz iterations on the momentum); it is meant for the 2-D
weights of hidden layers only. Embeddings, the output head (by default ``lm_head``), norms and biases are
optimized by AdamW, as Muon's authors, torch's documentation and the reference do.

The update is torch's own (``torch.optim.Muon``, torch >= 2.9); on an older torch a transcription of the same
algorithm (``_Muon`` below) stands in. Both optimizers share one ``state`` and their parameter groups are this
optimizer's ``param_groups`` (the same dicts), so lr schedulers, checkpoints (torch's optimizer state dict, keyed
by parameter name) and gradient clipping see one ordinary optimizer. Under FSDP2 or tensor parallelism a matrix
is a DTensor and Newton-Schulz runs on it through DTensor's operators, i.e. on the whole matrix (orthogonalizing
a shard alone would give another update).
"""

from __future__ import annotations

import logging
import math
import re

import torch
from torch import nn
from torch.optim import AdamW, Optimizer

from modalities.optim.optimizers import _local_numel, _per_model_part, get_optimizer_groups, unwrapped_parameter_name

logger = logging.getLogger(__name__)

NS_COEFFICIENTS = (3.4445, -4.775, 2.0315)


def muon_parameter_ids(model: nn.Module, adam_w_parameters: list[str]) -> set[int]:
    """ids of the trainable matrices Muon takes: 2-D, not an embedding's, and not named by ``adam_w_parameters``."""
    embeddings = {id(p) for module in model.modules() if isinstance(module, nn.Embedding) for p in module.parameters()}
    patterns = [re.compile(pattern) for pattern in adam_w_parameters]
    return {
        id(parameter)
        for name, parameter in model.named_parameters()
        if parameter.requires_grad and parameter.ndim == 2 and id(parameter) not in embeddings
        and not any(p.search(unwrapped_parameter_name(name)) for p in patterns)
    }


class MuonWithAdamW(Optimizer):
    """Muon over ``muon_groups`` and AdamW over ``adam_w_groups`` (torch param groups), stepped together."""

    def __init__(self, muon_groups: list[dict], adam_w_groups: list[dict], *, muon: dict, adam_w: dict):
        parameters = [p for group in muon_groups + adam_w_groups for p in group["params"]]
        super().__init__(parameters, {"lr": muon["lr"]})
        muon_class = getattr(torch.optim, "Muon", _Muon)
        self.muon = muon_class(muon_groups, **muon) if muon_groups else None
        self.adam_w = AdamW(adam_w_groups, **adam_w) if adam_w_groups else None
        self._share_groups_and_state()

    def _parts(self) -> list[Optimizer]:
        return [optimizer for optimizer in (self.muon, self.adam_w) if optimizer is not None]

    def _share_groups_and_state(self) -> None:
        self.param_groups = [group for optimizer in self._parts() for group in optimizer.param_groups]
        for optimizer in self._parts():
            optimizer.state = self.state

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for optimizer in self._parts():
            optimizer.step()
        return loss

    def load_state_dict(self, state_dict: dict) -> None:
        # torch's loader replaces param_groups and state with new objects; hand them back to the two parts.
        super().load_state_dict(state_dict)
        groups = iter(self.param_groups)
        for optimizer in self._parts():
            optimizer.param_groups = [next(groups) for _ in optimizer.param_groups]
            optimizer.state = self.state


def _muon_with_adam_w(model: nn.Module, *, weight_decay, weight_decay_groups_excluded, adam_w_parameters, muon,
                      adam_w) -> MuonWithAdamW:
    takes_muon = muon_parameter_ids(model, adam_w_parameters)
    muon_groups, adam_w_groups = [], []
    for group in get_optimizer_groups(model, weight_decay, weight_decay_groups_excluded):
        for chosen, into in ((True, muon_groups), (False, adam_w_groups)):
            members = [p for p in group["params"] if (id(p) in takes_muon) == chosen]
            if members:
                into.append({**group, "params": members})
    if not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0:
        for name, groups in (("Muon", muon_groups), ("AdamW", adam_w_groups)):
            tensors = [p for group in groups for p in group["params"]]
            logger.info("optimizer/muon: %s takes %d tensors, %s parameters on this rank", name, len(tensors),
                        f"{sum(_local_numel(p) for p in tensors):,}")
    return MuonWithAdamW(muon_groups, adam_w_groups, muon=muon, adam_w=adam_w)


def get_muon(
    lr: float,
    wrapped_model: nn.Module,
    weight_decay: float = 0.1,
    weight_decay_groups_excluded: list[str] | None = None,
    momentum: float = 0.95,
    nesterov: bool = True,
    ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
    eps: float = 1e-7,
    ns_steps: int = 5,
    adjust_lr_fn: str | None = None,
    adam_w_lr: float | None = None,
    adam_w_betas: tuple[float, float] = (0.9, 0.95),
    adam_w_eps: float = 1e-8,
    adam_w_parameters: list[str] | None = None,
) -> Optimizer:
    muon = {"lr": lr, "weight_decay": weight_decay, "momentum": momentum, "nesterov": nesterov,
                "ns_coefficients": tuple(ns_coefficients), "eps": eps, "ns_steps": ns_steps, "adjust_lr_fn": adjust_lr_fn}
    adam_w = {"lr": adam_w_lr if adam_w_lr is not None else lr, "betas": tuple(adam_w_betas), "eps": adam_w_eps,
                  "weight_decay": weight_decay}
    patterns = [r"(^|\.)lm_head\."] if adam_w_parameters is None else adam_w_parameters
    return _per_model_part(_muon_with_adam_w, wrapped_model, weight_decay=weight_decay,
                           weight_decay_groups_excluded=weight_decay_groups_excluded or [],
                           adam_w_parameters=patterns, muon=muon, adam_w=adam_w)


# ---- torch < 2.9: the same algorithm ----------------------------------------------------------------------


def newton_schulz(matrix: torch.Tensor, coefficients: tuple[float, float, float], steps: int, eps: float):
    """An approximately orthogonal matrix of ``matrix``'s shape (bfloat16), as torch.optim.Muon computes it."""
    a, b, c = coefficients
    x = matrix.bfloat16()
    wide = matrix.size(0) > matrix.size(1)
    x = x.T if wide else x
    x = x / x.norm().clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if wide else x


class _Muon(Optimizer):
    """torch.optim.Muon's update, state (``momentum_buffer``) and group keys, for a torch that lacks it."""

    def __init__(self, params, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
                 ns_coefficients=NS_COEFFICIENTS, eps=1e-7, ns_steps=5, adjust_lr_fn=None):
        defaults = {"lr": lr, "weight_decay": weight_decay, "momentum": momentum, "nesterov": nesterov,
                        "ns_coefficients": ns_coefficients, "eps": eps, "ns_steps": ns_steps, "adjust_lr_fn": adjust_lr_fn}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                buffer = self.state[param].setdefault("momentum_buffer", torch.zeros_like(param.grad))
                buffer.lerp_(param.grad, 1 - group["momentum"])
                update = param.grad.lerp(buffer, group["momentum"]) if group["nesterov"] else buffer
                update = newton_schulz(update, group["ns_coefficients"], group["ns_steps"], group["eps"])
                rows, columns = param.shape[:2]
                if group["adjust_lr_fn"] == "match_rms_adamw":
                    scale = 0.2 * math.sqrt(max(rows, columns))
                else:
                    scale = math.sqrt(max(1, rows / columns))
                param.mul_(1 - group["lr"] * group["weight_decay"])
                param.add_(update, alpha=-group["lr"] * scale)
