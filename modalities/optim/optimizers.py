"""Adam and AdamW whose parameters are split into weight-decay groups by parameter name.

A model names its groups in ``weight_decay_groups``: group name -> regular expressions searched in parameter
names (e.g. ``{"linear": [r"\\.attn", r"\\.mlp"], "embedding": [r"\\.wte"], "layernorm": [r"_norm"]}``).
The config lists the groups to exclude from weight decay. Every trainable parameter must fall into exactly one
group, so a renamed layer cannot silently change which parameters are decayed.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import torch
from torch import nn
from torch.optim import Adam, AdamW, Optimizer

logger = logging.getLogger(__name__)

# Path segments that wrappers insert into parameter names: torch.compile, activation checkpointing and FSDP1.
# FSDP2's fully_shard keeps the original names.
WRAPPER_NAME_SEGMENTS = ("_orig_mod.", "_checkpoint_wrapped_module.", "_fsdp_wrapped_module.")
# Attributes through which those wrappers expose the module they wrap.
_WRAPPED_MODULE_ATTRIBUTES = ("_orig_mod", "_checkpoint_wrapped_module", "_fsdp_wrapped_module")


class OptimizerGroupError(ValueError):
    pass


def unwrapped_parameter_name(name: str) -> str:
    """The parameter's name in the unwrapped model (wrapper segments removed)."""
    for segment in WRAPPER_NAME_SEGMENTS:
        name = name.replace(segment, "")
    return name


def find_weight_decay_groups(model: nn.Module) -> dict[str, list[str]] | None:
    """The model's ``weight_decay_groups``, looked up through wrappers; None if it declares none."""
    module: nn.Module | None = model
    while module is not None:
        groups = getattr(module, "weight_decay_groups", None)
        if groups is not None:
            return groups
        module = next((module._modules[a] for a in _WRAPPED_MODULE_ATTRIBUTES if a in module._modules), None)
    return None


@dataclass
class _NamedGroup:
    name: str
    parameters: list[nn.Parameter]
    weight_decay: float


def _local_numel(parameter: torch.Tensor) -> int:
    # A DTensor's numel() is the global size; this rank holds only its shard.
    to_local = getattr(parameter, "to_local", None)
    return to_local().numel() if to_local is not None else parameter.numel()


def assign_weight_decay_groups(
    named_parameters: dict[str, nn.Parameter], weight_decay_groups: dict[str, list[str]]
) -> dict[str, list[str]]:
    """Group name -> names of the parameters it matches; raises unless every parameter matches exactly one."""
    compiled = {group: [re.compile(p) for p in patterns] for group, patterns in weight_decay_groups.items()}
    members: dict[str, list[str]] = {group: [] for group in compiled}
    unmatched: list[str] = []
    ambiguous: list[str] = []
    for name in named_parameters:
        plain_name = unwrapped_parameter_name(name)
        hits = [g for g, patterns in compiled.items() if any(p.search(plain_name) for p in patterns)]
        if not hits:
            unmatched.append(plain_name)
        elif len(hits) > 1:
            ambiguous.append(f"{plain_name} (in {', '.join(hits)})")
        else:
            members[hits[0]].append(name)
    problems = []
    if unmatched:
        problems.append(f"parameters in no group: {', '.join(unmatched)}")
    if ambiguous:
        problems.append(f"parameters in more than one group: {', '.join(ambiguous)}")
    if problems:
        patterns = "; ".join(f"{g}: {p}" for g, p in weight_decay_groups.items())
        raise OptimizerGroupError(
            "every trainable parameter must match exactly one of the model's weight_decay_groups "
            f"({patterns}); " + "; ".join(problems) + ". Fix the model's weight_decay_groups patterns."
        )
    return members


def get_optimizer_groups(
    model: nn.Module, weight_decay: float, weight_decay_groups_excluded: list[str]
) -> list[dict]:
    """torch param groups: one with ``weight_decay`` and one with 0 for the excluded groups (empty ones left out)."""
    named_parameters = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not named_parameters:
        raise OptimizerGroupError(f"the model ({type(model).__name__}) has no trainable parameters")

    if weight_decay == 0 or not weight_decay_groups_excluded:
        groups = [_NamedGroup("all", list(named_parameters.values()), weight_decay)]
    else:
        weight_decay_groups = find_weight_decay_groups(model)
        if not weight_decay_groups:
            raise OptimizerGroupError(
                f"weight_decay_groups_excluded is {weight_decay_groups_excluded}, but the model "
                f"({type(model).__name__}) declares no weight_decay_groups; leave weight_decay_groups_excluded "
                "empty to decay every parameter"
            )
        unknown = [g for g in weight_decay_groups_excluded if g not in weight_decay_groups]
        if unknown:
            raise OptimizerGroupError(
                f"weight_decay_groups_excluded names unknown group(s) {unknown}; the model "
                f"({type(model).__name__}) has the groups {sorted(weight_decay_groups)}"
            )
        members = assign_weight_decay_groups(named_parameters, weight_decay_groups)
        groups = [
            _NamedGroup(
                group,
                [named_parameters[n] for n in names],
                0.0 if group in weight_decay_groups_excluded else weight_decay,
            )
            for group, names in members.items()
        ]

    _log_groups(groups)
    decayed = [p for g in groups if g.weight_decay != 0 for p in g.parameters]
    not_decayed = [p for g in groups if g.weight_decay == 0 for p in g.parameters]
    param_groups = []
    for parameters, decay in ((decayed, weight_decay), (not_decayed, 0.0)):
        # One group per mesh where meshes are mixed (expert-parallel or partly tensor-parallel models): torch's
        # multi-tensor (foreach) kernels run per group and cannot mix DTensors of different meshes.
        param_groups += [{"params": members, "weight_decay": decay} for members in _by_mesh(parameters)]
    return param_groups


def _by_mesh(parameters: list[nn.Parameter]) -> list[list[nn.Parameter]]:
    groups: dict[object, list[nn.Parameter]] = {}
    for parameter in parameters:
        groups.setdefault(getattr(parameter, "device_mesh", None), []).append(parameter)
    return list(groups.values())


def _log_groups(groups: list[_NamedGroup]) -> None:
    if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return
    for group in groups:
        logger.info(
            "optimizer group %s: %d tensors, %s parameters on this rank, weight_decay=%s",
            group.name,
            len(group.parameters),
            f"{sum(_local_numel(p) for p in group.parameters):,}",
            group.weight_decay,
        )


class ModelPartsOptimizer(Optimizer):
    """One optimizer per pipeline model part, used as one (torchtitan's and the reference's arrangement): each
    part's state is read and written through torch's state-dict API with that part, so checkpoints key it by the
    parameters' names whatever the layout. ``param_groups`` lists the parts' groups (the same dicts), so an lr
    scheduler sets every part's learning rate."""

    def __init__(self, model_parts: list[nn.Module], optimizers: list[Optimizer]):
        if not optimizers or len(model_parts) != len(optimizers):
            raise ValueError(f"{len(model_parts)} model parts need as many optimizers, got {len(optimizers)}")
        parameters = [p for optimizer in optimizers for group in optimizer.param_groups for p in group["params"]]
        self.model_parts = list(model_parts)
        super().__init__(parameters, dict(optimizers[0].defaults))
        self.optimizers = list(optimizers)  # from here on param_groups are the parts'

    @property
    def param_groups(self) -> list[dict]:
        """The parts' groups, as they are now: loading a state dict into a part replaces its group dicts."""
        optimizers = self.__dict__.get("optimizers")
        if optimizers is None:  # inside torch's Optimizer.__init__
            return self.__dict__.setdefault("_own_param_groups", [])
        return [group for optimizer in optimizers for group in optimizer.param_groups]

    @param_groups.setter
    def param_groups(self, groups: list[dict]) -> None:
        self.__dict__["_own_param_groups"] = groups  # torch's Optimizer.__init__ sets its own list

    @torch.no_grad()
    def step(self, closure=None):
        for optimizer in self.optimizers:
            optimizer.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)


def _per_model_part(build, wrapped_model, **kwargs) -> Optimizer:
    if isinstance(wrapped_model, (list, tuple)):
        parts = list(wrapped_model)
        return ModelPartsOptimizer(parts, [build(part, **kwargs) for part in parts])
    return build(wrapped_model, **kwargs)


def _adam(model, *, lr, betas, eps, weight_decay, weight_decay_groups_excluded, foreach, fused, decoupled):
    param_groups = get_optimizer_groups(model, weight_decay, weight_decay_groups_excluded)
    optimizer_class = AdamW if decoupled else Adam
    return optimizer_class(param_groups, lr=lr, betas=tuple(betas), eps=eps, foreach=foreach, fused=fused)


def get_adam(
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    weight_decay_groups_excluded: list[str],
    wrapped_model: nn.Module,
    foreach: bool | None = None,
    fused: bool | None = None,
) -> Optimizer:
    return _per_model_part(_adam, wrapped_model, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                           weight_decay_groups_excluded=weight_decay_groups_excluded, foreach=foreach, fused=fused,
                           decoupled=False)


def get_adam_w(
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    weight_decay_groups_excluded: list[str],
    wrapped_model: nn.Module,
    foreach: bool | None = None,
    fused: bool | None = None,
) -> Optimizer:
    return _per_model_part(_adam, wrapped_model, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                           weight_decay_groups_excluded=weight_decay_groups_excluded, foreach=foreach, fused=fused,
                           decoupled=True)


def get_ep_adam_w(lr: float, betas: tuple[float, float], eps: float, weight_decay: float,
                  weight_decay_groups_excluded: list[str], wrapped_model: nn.Module, device_mesh=None,
                  foreach: bool | None = None, fused: bool | None = None) -> Optimizer:
    """`optimizer/ep_adam_w`: AdamW (the reference's EP optimizer takes the same update). The experts are DTensors
    sharded by FSDP2 over the ranks holding the same experts, so their state is sharded like their weights; the
    groups are split by mesh (get_optimizer_groups)."""
    return get_adam_w(lr, betas, eps, weight_decay, weight_decay_groups_excluded, wrapped_model, foreach, fused)
