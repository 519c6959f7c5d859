"""Weight initialization by parameter name, applied in place; works on meta-device and FSDP2-sharded models.

Parameters are selected by regexes over their names (the names Modalities uses, so its configs mean the same
here). Wrapper prefixes added by torch.compile, activation checkpointing or FSDP1 are stripped first, so the
init can run after wrapping. ``torch.nn.init`` runs in place on DTensor shards, so sharded models are
initialized without gathering.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
from torch import nn

from modalities.logging.library_warnings import DTENSOR_RANDOM_ON_CPU, library_warnings_to_debug_log
from modalities.models.model import retie_parameters, tied_parameter_slots
from modalities.models.model_parts import WHOLE_MODEL_PARAMETERS_ATTRIBUTE, for_each_part, is_pipeline_part

_WRAPPER_PREFIXES = ("_orig_mod.", "_checkpoint_wrapped_module.", "_fsdp_wrapped_module.")


@dataclass(frozen=True)
class NamedParameterFilter:
    weights: tuple[str, ...]
    biases: tuple[str, ...] = ()


# The parameter groups of the reference (arXiv 2312.16903), matched with re.fullmatch on unwrapped names.
_GPT2_LINEAR = r"transformer\.h\.\d+\.(attn\.(q_attn|k_attn|v_attn|c_proj)|mlp\.(c_fc|c_proj|W|V|W_2))"
_NOT_A_NORM = r"^(?!.*norm)(?!.*ln_)"  # CoCa: every weight and bias except those of norm layers
PARAMETER_GROUPS: dict[str, dict[str, NamedParameterFilter]] = {
    "gpt2": {
        "plain": NamedParameterFilter(
            # The reference's bare lm_head\.weight also matches model/moe's head (the one weight of that model this
            # group names: the reference's MoE configs initialize it with model_type gpt2).
            weights=(_GPT2_LINEAR + r"\.weight", r"transformer\.(wte|wpe)\.weight", r"transformer\.lm_head\.weight",
                     r"lm_head\.weight"),
            biases=(_GPT2_LINEAR + r"\.bias", r"transformer\.lm_head\.bias", r"lm_head\.bias"),
        ),
        # The projections that write into the residual stream: attention output and the MLP's last layer.
        "scaled": NamedParameterFilter(weights=(r"transformer\.h\.\d+\.(attn\.c_proj|mlp\.c_proj|mlp\.W_2)\.weight",)),
        "scaled_embed": NamedParameterFilter(weights=(r"transformer\.(wte|wpe|lm_head)\.weight",)),
    },
    "coca": {
        "plain": NamedParameterFilter(weights=(_NOT_A_NORM + r".*\.weight$",), biases=(_NOT_A_NORM + r".*\.bias$",)),
        "scaled": NamedParameterFilter(weights=()),
        "scaled_embed": NamedParameterFilter(weights=()),
    },
}


def normalize_parameter_name(name: str) -> str:
    for prefix in _WRAPPER_PREFIXES:
        name = name.replace(prefix, "")
    return name


@dataclass(frozen=True)
class NormalInitStep:
    std: float
    parameters: NamedParameterFilter


class ComposedModelInitializer:
    """Runs its steps in order; a later step overrides an earlier one on the parameters it matches."""

    def __init__(self, mean: float, steps: list[NormalInitStep], seed: int | None = None):
        self.mean, self.steps, self.seed = mean, steps, seed
        self.pipeline_rng_start: tuple | None = None  # see initialize_model

    @torch.no_grad()
    def initialize_in_place(self, model: nn.Module) -> None:
        """A pipeline stage (pipeline/staged) is initialized as its part of the whole model: the weights of the
        stages elsewhere are drawn into stand-ins of their shape, so with a seed every stage gets exactly the
        whole model's weights (and no two stages the same random numbers)."""
        if self.seed is not None:
            torch.manual_seed(self.seed)
        present = {normalize_parameter_name(name): p for name, p in model.named_parameters()}
        whole = getattr(model, WHOLE_MODEL_PARAMETERS_ATTRIBUTE, None)
        order = [(name, shape) for name, shape, _ in whole] if whole is not None else [(n, None) for n in present]
        for step in self.steps:
            for name, shape in order:
                p = present.get(name)
                if any(re.fullmatch(regex, name) for regex in step.parameters.weights):
                    nn.init.normal_(p if p is not None else _stand_in(present, shape), mean=self.mean, std=step.std)
                elif p is not None and any(re.fullmatch(regex, name) for regex in step.parameters.biases):
                    nn.init.zeros_(p)


def _stand_in(present: dict[str, nn.Parameter], shape: tuple[int, ...]) -> torch.Tensor:
    """An empty tensor of ``shape`` laid out like this stage's parameters (a DTensor on their mesh when they are
    sharded), whose draw advances the random state as the missing parameter's would."""
    like = next(iter(present.values()))
    if hasattr(like, "device_mesh"):
        from torch.distributed.tensor import empty

        return empty(*shape, device_mesh=like.device_mesh, placements=like.placements, dtype=like.dtype)
    return torch.empty(shape, device=like.device, dtype=like.dtype)


def plain_std(std: float | str, hidden_dim: int | None) -> float:
    # "auto" is the "small init" of Nguyen & Salazar (2019), sqrt(2 / (5 d)), as in the reference.
    return math.sqrt(2 / (5 * hidden_dim)) if std == "auto" else float(std)


def composed_initializer(
    model_type: str,
    weight_init_type: str,
    mean: float,
    std: float | str,
    hidden_dim: int | None = None,
    num_layers: int | None = None,
    seed: int | None = None,
    multi_device_generator_policy: str = "warn",
    device_mesh=None,
) -> ComposedModelInitializer:
    """Builder of ``model_initialization/composed``. ``device_mesh`` is accepted and not needed: pipeline stages
    draw their part of the whole model (see ComposedModelInitializer), which is what per-stage seeds are for."""
    groups = PARAMETER_GROUPS[model_type]
    base_std = plain_std(std, hidden_dim)
    steps = [NormalInitStep(base_std, groups["plain"])]
    if weight_init_type in ("scaled", "scaled_embed"):
        steps.append(NormalInitStep(base_std / math.sqrt(2 * num_layers), groups["scaled"]))
    if weight_init_type == "scaled_embed":
        steps.append(NormalInitStep(math.sqrt(0.4), groups["scaled_embed"]))
    return ComposedModelInitializer(mean=mean, steps=steps, seed=seed)


def _default_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


@torch.no_grad()
def materialize_meta_parameters(model: nn.Module, device: torch.device | None = None) -> bool:
    """Give a meta-device model real (uninitialized) storage, keeping tied weights tied. Returns whether it did."""
    if not any(p.device.type == "meta" for p in model.parameters()):
        return False
    tied = tied_parameter_slots(model)
    model.to_empty(device=device or _default_device())
    # to_empty gives every module its own new tensor, which would silently untie tied weights (wte/lm_head).
    retie_parameters(tied)
    return True


@torch.no_grad()
def reset_parameters_recursively(module: nn.Module) -> None:
    """Every module's own default init (norm scales to one, ...), children before parents, as the reference does
    before its named init; it also consumes the RNG the same way, so a seeded init draws the same weights."""
    for child in module.children():
        reset_parameters_recursively(child)
    if callable(getattr(module, "reset_parameters", None)):
        module.reset_parameters()


@for_each_part
def initialize_model(model: nn.Module, model_initializer: ComposedModelInitializer) -> nn.Module:
    """Builder of ``model/model_initialized``: materialize meta parameters if any, reset every module's defaults,
    then initialize by name in place.

    Pipeline stages of an unseeded init all start their named init from the generator state the first stage of
    this rank found (the same on every rank: nothing before it draws), not from where their own resets left it:
    each then draws as its part of the whole model (see ComposedModelInitializer), so no two stages share random
    numbers."""
    materialize_meta_parameters(model)
    replay_from = None
    if is_pipeline_part(model) and getattr(model_initializer, "seed", None) is None:
        replay_from = getattr(model_initializer, "pipeline_rng_start", None)
        if replay_from is None:
            replay_from = model_initializer.pipeline_rng_start = _rng_state()
    with library_warnings_to_debug_log(DTENSOR_RANDOM_ON_CPU):  # draws on sharded parameters of a CPU mesh
        reset_parameters_recursively(model)
        if replay_from is not None:
            _set_rng_state(replay_from)
        model_initializer.initialize_in_place(model)
    return model


def _rng_state() -> tuple:
    return torch.get_rng_state(), torch.cuda.get_rng_state() if torch.cuda.is_available() else None


def _set_rng_state(state: tuple) -> None:
    cpu, cuda = state
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda)
