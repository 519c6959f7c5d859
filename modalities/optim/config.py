"""Configs of the loss, optimizer, learning-rate scheduler and gradient clipper components (torch-free).

Field names follow Modalities' configs (``src/modalities/config/config.py`` and
``training/gradient_clipping/fsdp_gradient_clipper_config.py``), so its YAML files load unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from modalities.registry.types import ComponentConfig, ComponentRef, empty_list

PositiveFloat = Annotated[float, Field(gt=0.0)]
NonNegativeFloat = Annotated[float, Field(ge=0.0)]
StepCount = Annotated[int, Field(strict=True, gt=0)]
LastEpoch = Annotated[int, Field(strict=True, ge=-1)]

_OPTIMIZER = "The optimizer whose learning rate is scheduled."
_LAST_EPOCH = (
    "Index of the last step already taken (-1 for a fresh run). When resuming, the schedule continues from "
    "here; param groups without a stored 'initial_lr' use their configured lr as the base."
)


# ---------------------------------------------------------------------------------------------------- loss


class CLMCrossEntropyLossConfig(ComponentConfig):
    """Mean token cross-entropy of a causal language model."""

    target_key: str = Field(description="Key of the target token ids [B, T] in the batch's targets.")
    prediction_key: str = Field(description="Key of the logits [B, T, V] in the model's output.")
    ignore_index: int = Field(
        default=-100, strict=True, description="Target id excluded from the loss and from the token count."
    )
    weight: float = Field(default=1.0, description="Factor the loss is scaled by when losses are combined.")
    tag: str = Field(default="CLMCrossEntropyLoss", description="Name under which the loss is logged.")


# ---------------------------------------------------------------------------------------------------- optimizers


class AdamOptimizerConfig(ComponentConfig):
    """Adam over the model's parameters, split into weight-decay groups by parameter name."""

    lr: PositiveFloat = Field(description="Learning rate (the base lr that schedulers scale).")
    wrapped_model: ComponentRef["model"] = Field(description="The (possibly FSDP2-wrapped) model to optimize.")
    betas: tuple[Annotated[float, Field(ge=0.0, lt=1.0)], Annotated[float, Field(ge=0.0, lt=1.0)]] = Field(
        description="Coefficients of the running averages of the gradient and its square, e.g. [0.9, 0.95]."
    )
    eps: PositiveFloat = Field(description="Term added to the denominator for numerical stability, e.g. 1e-8.")
    weight_decay: NonNegativeFloat = Field(description="Weight decay of every group not excluded.")
    weight_decay_groups_excluded: list[str] = Field(
        default_factory=empty_list,
        description=(
            "Names of the model's weight-decay groups (e.g. embedding, layernorm, linear; see the model's "
            "weight_decay_groups) whose parameters get weight decay 0."
        ),
    )
    foreach: bool | None = Field(default=None, description="torch's foreach implementation (None: torch decides).")
    fused: bool | None = Field(default=None, description="torch's fused implementation (None: torch decides).")


class AdamWOptimizerConfig(AdamOptimizerConfig):
    """AdamW (decoupled weight decay) over the model's parameters, split into weight-decay groups."""


_Beta = Annotated[float, Field(ge=0.0, lt=1.0)]


class MuonOptimizerConfig(ComponentConfig):
    """Muon (momentum orthogonalized by Newton-Schulz; torch.optim.Muon) for the hidden layers' matrices, AdamW
    for every other parameter (embeddings, the output head, norms, biases), as one optimizer."""

    lr: PositiveFloat = Field(description="Learning rate of the Muon matrices (the base lr schedulers scale).")
    wrapped_model: ComponentRef["model"] = Field(description="The (possibly FSDP2-wrapped) model to optimize.")
    weight_decay: NonNegativeFloat = Field(
        default=0.1, description="Decoupled weight decay (lr * weight_decay per step) of every group not excluded."
    )
    weight_decay_groups_excluded: list[str] = Field(
        default_factory=empty_list,
        description="Names of the model's weight-decay groups (e.g. embedding, layernorm) whose parameters get "
        "weight decay 0, in Muon and in AdamW alike.",
    )
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(default=0.95, description="Muon's momentum factor.")
    nesterov: bool = Field(default=True, description="Nesterov momentum (the update looks ahead along it).")
    ns_coefficients: tuple[float, float, float] = Field(
        default=(3.4445, -4.775, 2.0315),
        description="Coefficients (a, b, c) of the quintic Newton-Schulz iteration X <- aX + (bA + cA^2)X, A = XX^T.",
    )
    eps: PositiveFloat = Field(
        default=1e-7, description="Lower bound of the norm the momentum is divided by before the iteration."
    )
    ns_steps: Annotated[int, Field(strict=True, gt=0, lt=100)] = Field(
        default=5, description="Newton-Schulz iterations per step."
    )
    adjust_lr_fn: Literal["original", "match_rms_adamw"] | None = Field(
        default=None,
        description="How the lr is scaled by a matrix's shape (A, B): original (None): sqrt(max(1, A/B)); "
        "match_rms_adamw: 0.2 * sqrt(max(A, B)), which lets Muon use an lr and weight decay tuned for AdamW.",
    )
    adam_w_lr: PositiveFloat | None = Field(
        default=None, description="Learning rate of the AdamW parameters (default: lr)."
    )
    adam_w_betas: tuple[_Beta, _Beta] = Field(
        default=(0.9, 0.95), description="AdamW's coefficients of the running averages of the gradient and its square."
    )
    adam_w_eps: PositiveFloat = Field(default=1e-8, description="AdamW's term added to the denominator.")
    adam_w_parameters: list[str] = Field(
        default_factory=lambda: [r"(^|\.)lm_head\."],
        description="Regular expressions (searched in parameter names) of 2-D parameters that AdamW takes instead "
        "of Muon, besides every embedding and every parameter that is not a matrix: by default the output head.",
    )

    @field_validator("adam_w_parameters")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        import re

        for index, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"adam_w_parameters[{index}] {pattern!r} is not a regular expression: {e}") from None
        return patterns


# ---------------------------------------------------------------------------------------------------- schedulers


class EPAdamWOptimizerConfig(AdamWOptimizerConfig):
    """AdamW for an expert-parallel model (the reference's ep_adam_w): the same update as adam_w; the parameters
    are grouped by their mesh as well as by weight decay, so torch's multi-tensor kernels never mix meshes."""

    device_mesh: ComponentRef["device_mesh"] | None = Field(
        default=None, description="The device mesh (the reference's field); each parameter's own mesh is used."
    )


class DummyLRSchedulerConfig(ComponentConfig):
    """Keeps the optimizer's learning rate unchanged."""

    optimizer: ComponentRef["optimizer"] = Field(description=_OPTIMIZER)


class StepLRSchedulerConfig(ComponentConfig):
    """torch StepLR: multiply the lr by gamma every step_size steps."""

    optimizer: ComponentRef["optimizer"] = Field(description=_OPTIMIZER)
    step_size: StepCount = Field(description="Steps between two decays.")
    gamma: Annotated[float, Field(ge=0.0)] = Field(description="Factor the lr is multiplied by at each decay.")
    last_epoch: LastEpoch = Field(default=-1, description=_LAST_EPOCH)


class ConstantLRSchedulerConfig(ComponentConfig):
    """torch ConstantLR: the lr times factor for the first total_iters steps, then the lr itself."""

    optimizer: ComponentRef["optimizer"] = Field(description=_OPTIMIZER)
    factor: Annotated[float, Field(ge=0.0, le=1.0)] = Field(description="Factor applied until total_iters.")
    total_iters: StepCount = Field(description="Steps during which the factor applies.")
    last_epoch: LastEpoch = Field(default=-1, description=_LAST_EPOCH)


class LinearLRSchedulerConfig(ComponentConfig):
    """torch LinearLR: the lr factor goes linearly from start_factor to end_factor over total_iters steps."""

    optimizer: ComponentRef["optimizer"] = Field(description=_OPTIMIZER)
    start_factor: Annotated[float, Field(gt=0.0, le=1.0)] = Field(description="Factor at step 0.")
    end_factor: Annotated[float, Field(ge=0.0, le=1.0)] = Field(description="Factor from step total_iters on.")
    total_iters: StepCount = Field(description="Steps over which the factor changes.")
    last_epoch: LastEpoch = Field(default=-1, description=_LAST_EPOCH)


class OneCycleLRSchedulerConfig(ComponentConfig):
    """torch OneCycleLR: warm up to max_lr, then anneal to max_lr / div_factor / final_div_factor."""

    optimizer: ComponentRef["optimizer"] = Field(description=_OPTIMIZER)
    max_lr: PositiveFloat | list[PositiveFloat] = Field(
        description="Peak learning rate (one value, or one per param group)."
    )
    total_steps: StepCount | None = Field(
        default=None, description="Steps in the cycle; or give epochs and steps_per_epoch instead."
    )
    epochs: StepCount | None = Field(default=None, description="Epochs in the cycle (with steps_per_epoch).")
    steps_per_epoch: StepCount | None = Field(default=None, description="Steps per epoch (with epochs).")
    pct_start: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        default=0.3, description="Fraction of the cycle spent increasing the lr."
    )
    anneal_strategy: Literal["cos", "linear"] = Field(default="cos", description="Shape of the annealing.")
    cycle_momentum: bool = Field(
        default=False,
        description="Cycle momentum (Adam's beta1) inversely to the lr between the two bounds. Defaults to false "
        "as in the reference's main branch (its 0.5.0 release defaulted to true: set it to keep that behaviour).",
    )
    base_momentum: PositiveFloat | list[PositiveFloat] = Field(
        default=0.85, description="Lower momentum bound (reached at the lr peak)."
    )
    max_momentum: PositiveFloat | list[PositiveFloat] = Field(
        default=0.95, description="Upper momentum bound (at the start and the end of the cycle)."
    )
    div_factor: PositiveFloat = Field(default=25.0, description="The initial lr is max_lr / div_factor.")
    final_div_factor: PositiveFloat = Field(
        default=1e4, description="The final lr is max_lr / div_factor / final_div_factor."
    )
    three_phase: bool = Field(
        default=False, description="Add a third phase annihilating the lr (fastai's schedule) instead of two."
    )
    last_epoch: LastEpoch = Field(default=-1, description=_LAST_EPOCH)

    @model_validator(mode="after")
    def _needs_length(self) -> "OneCycleLRSchedulerConfig":
        if self.total_steps is None and (self.epochs is None or self.steps_per_epoch is None):
            raise ValueError("give total_steps, or both epochs and steps_per_epoch")
        total = self.total_steps if self.total_steps is not None else self.epochs * self.steps_per_epoch
        if not (isinstance(total, int) and isinstance(self.pct_start, float)):
            return self  # a deferred value: checked when built
        # torch's OneCycleLR interpolates each phase over (end - start) steps, with the first phase ending at
        # pct_start * total - 1: a phase it reaches with zero length divides by zero on the first step.
        warmup_end = float(self.pct_start * total) - 1
        if warmup_end == 0:
            raise ValueError(
                f"pct_start {self.pct_start} x total_steps {total} is a warm-up of exactly 1 step, which torch's "
                "OneCycleLR divides by zero on; choose a pct_start that gives 2 or more warm-up steps (or less than 1)"
            )
        last_end = total - 1 if not self.three_phase else float(2 * self.pct_start * total) - 2
        if not self.three_phase and total - 1 - warmup_end == 0:
            raise ValueError(
                f"pct_start {self.pct_start} leaves no annealing steps of the {total}, which torch's OneCycleLR "
                "divides by zero on; use a pct_start below 1"
            )
        if self.three_phase and total - 1 - last_end == 0:
            raise ValueError(
                f"pct_start {self.pct_start} x total_steps {total} leaves the third phase no steps, which torch's "
                "OneCycleLR divides by zero on; use a smaller pct_start"
            )
        return self


class CosineAnnealingLRSchedulerConfig(ComponentConfig):
    """torch CosineAnnealingLR: the lr follows a half cosine from the base lr to eta_min over t_max steps."""

    optimizer: ComponentRef["optimizer"] = Field(description=_OPTIMIZER)
    t_max: StepCount = Field(description="Steps of the half cosine (torch's T_max).")
    eta_min: NonNegativeFloat = Field(default=0.0, description="Minimum learning rate.")
    last_epoch: LastEpoch = Field(default=-1, description=_LAST_EPOCH)


class LinearWarmupCosineAnnealingLRSchedulerConfig(ComponentConfig):
    """Linear warmup from initial_lr to the base lr over warmup_steps, then a half cosine down to final_lr at
    total_steps; final_lr after that."""

    optimizer: ComponentRef["optimizer"] = Field(description=_OPTIMIZER)
    warmup_steps: Annotated[int, Field(strict=True, ge=0)] = Field(
        description="Steps of linear warmup; the base lr is reached at this step."
    )
    total_steps: StepCount = Field(description="Step at which the cosine reaches final_lr.")
    initial_lr: NonNegativeFloat = Field(
        default=0.0,
        description="Learning rate at step 0 (a value of 0 makes the first step a no-op; a small value avoids it).",
    )
    final_lr: NonNegativeFloat = Field(default=0.0, description="Learning rate at and after total_steps.")
    max_lr: PositiveFloat | None = Field(
        default=None,
        description="The peak lr, as the reference writes it; it must equal the optimizer's lr (which is the peak).",
    )
    last_epoch: LastEpoch = Field(default=-1, description=_LAST_EPOCH)

    @model_validator(mode="after")
    def _warmup_fits(self) -> "LinearWarmupCosineAnnealingLRSchedulerConfig":
        if self.warmup_steps > self.total_steps:
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) must not exceed total_steps ({self.total_steps})"
            )
        return self


# ---------------------------------------------------------------------------------------------------- clipping

GradientNormType = Literal["P1_NORM", "P2_NORM", "MAX_NORM"]
_NORM_TYPE = "Norm of the gradients: P2_NORM (Euclidean), MAX_NORM (largest absolute entry) or P1_NORM."


def _upper_norm_type(value: Any) -> Any:
    # Modalities spells the enum by name (P2_NORM); accept p2_norm too.
    return value.upper() if isinstance(value, str) else value


class FSDPGradientClipperConfig(ComponentConfig):
    """Clip the gradients to a maximum total norm and return the norm before clipping."""

    wrapped_model: ComponentRef["model"] = Field(description="The model whose gradients are clipped.")
    max_norm: Annotated[float, Field(gt=0.0)] = Field(description="Largest allowed total gradient norm.")
    norm_type: GradientNormType = Field(description=_NORM_TYPE)

    _normalize_norm_type = field_validator("norm_type", mode="before")(_upper_norm_type)


class FSDPLoggingOnlyGradientClipperConfig(ComponentConfig):
    """Compute and return the total gradient norm without clipping."""

    wrapped_model: ComponentRef["model"] = Field(description="The model whose gradient norm is measured.")
    norm_type: GradientNormType = Field(description=_NORM_TYPE)

    _normalize_norm_type = field_validator("norm_type", mode="before")(_upper_norm_type)


_MODEL_PARTS_ALIASES = AliasChoices("wrapped_model", "wrapped_model_or_parts", "model_parts")
_DEVICE_MESH = (
    "The device mesh of the run (accepted for Modalities configs); the norm is reduced over each gradient's own "
    "DTensor mesh. A mesh with a pipeline-parallel ('pp') dimension larger than 1 is rejected."
)


class FSDP2GradientClipperConfig(ComponentConfig):
    """Clip the (DTensor-sharded) gradients of an FSDP2 model to a maximum total norm; return the norm."""

    wrapped_model: ComponentRef["model"] | list[ComponentRef["model"]] = Field(
        validation_alias=_MODEL_PARTS_ALIASES,
        description="The model, or its parts, whose gradients are clipped (also `wrapped_model_or_parts`).",
    )
    max_norm: Annotated[float, Field(gt=0.0)] = Field(description="Largest allowed total gradient norm.")
    norm_type: GradientNormType = Field(description=_NORM_TYPE)
    device_mesh: ComponentRef["device_mesh"] | None = Field(default=None, description=_DEVICE_MESH)

    _normalize_norm_type = field_validator("norm_type", mode="before")(_upper_norm_type)


class FSDP2LoggingOnlyGradientClipperConfig(ComponentConfig):
    """Compute and return the total norm of an FSDP2 model's gradients without clipping."""

    wrapped_model: ComponentRef["model"] | list[ComponentRef["model"]] = Field(
        validation_alias=_MODEL_PARTS_ALIASES,
        description="The model, or its parts, whose gradient norm is measured (also `wrapped_model_or_parts`).",
    )
    norm_type: GradientNormType = Field(description=_NORM_TYPE)
    device_mesh: ComponentRef["device_mesh"] | None = Field(default=None, description=_DEVICE_MESH)

    _normalize_norm_type = field_validator("norm_type", mode="before")(_upper_norm_type)


class EPGradientClipperConfig(FSDP2GradientClipperConfig):
    """Clip the gradients of an expert-parallel model (experts sharded over their own mesh, the rest over the
    data-parallel one) to a maximum total norm; every parameter counted once; return the norm."""

    error_if_nonfinite: bool = Field(
        default=False, description="Raise when the total norm is NaN or infinite (the reference's field)."
    )


class DummyGradientClipperConfig(ComponentConfig):
    """Leaves the gradients alone and returns -1 as the norm (no norm is computed)."""
