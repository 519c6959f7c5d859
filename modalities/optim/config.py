"""Configs of the loss, optimizer, learning-rate scheduler and gradient clipper components (torch-free).

Field names follow Modalities' configs (``src/modalities/config/config.py`` and
``training/gradient_clipping/fsdp_gradient_clipper_config.py``), so its YAML files load unchanged.

Each config class is defined in a module of its own under ``configs/`` and imported from there when first asked for:
``modalities.optim.config.X`` works for every class in CONFIG_CLASSES, and `modalities validate` defines only the
classes a config names (see registry/lazy.py). This module holds what they share.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field

from modalities.registry.lazy import lazy_attributes

PositiveFloat = Annotated[float, Field(gt=0.0)]
NonNegativeFloat = Annotated[float, Field(ge=0.0)]
StepCount = Annotated[int, Field(strict=True, gt=0)]
LastEpoch = Annotated[int, Field(strict=True, ge=-1)]
Beta = Annotated[float, Field(ge=0.0, lt=1.0)]

OPTIMIZER_DOC = "The optimizer whose learning rate is scheduled."
LAST_EPOCH_DOC = (
    "Index of the last step already taken (-1 for a fresh run). When resuming, the schedule continues from "
    "here; param groups without a stored 'initial_lr' use their configured lr as the base."
)


# gradient clipping
GradientNormType = Literal["P1_NORM", "P2_NORM", "MAX_NORM"]
NORM_TYPE_DOC = "Norm of the gradients: P2_NORM (Euclidean), MAX_NORM (largest absolute entry) or P1_NORM."


def upper_norm_type(value: Any) -> Any:
    # Modalities spells the enum by name (P2_NORM); accept p2_norm too.
    return value.upper() if isinstance(value, str) else value


MODEL_PARTS_ALIASES = AliasChoices("wrapped_model", "wrapped_model_or_parts", "model_parts")
DEVICE_MESH_DOC = (
    "The device mesh of the run (accepted for Modalities configs); the norm is reduced over each gradient's own "
    "DTensor mesh. A mesh with a pipeline-parallel ('pp') dimension larger than 1 is rejected."
)


# class name -> the module that defines it
CONFIG_CLASSES = {
    "CLMCrossEntropyLossConfig": "modalities.optim.configs.loss",
    "AdamOptimizerConfig": "modalities.optim.configs.adam",
    "AdamWOptimizerConfig": "modalities.optim.configs.adam",
    "MuonOptimizerConfig": "modalities.optim.configs.muon",
    "EPAdamWOptimizerConfig": "modalities.optim.configs.ep_adam_w",
    "DummyLRSchedulerConfig": "modalities.optim.configs.dummy_lr",
    "StepLRSchedulerConfig": "modalities.optim.configs.step_lr",
    "ConstantLRSchedulerConfig": "modalities.optim.configs.constant_lr",
    "LinearLRSchedulerConfig": "modalities.optim.configs.linear_lr",
    "OneCycleLRSchedulerConfig": "modalities.optim.configs.onecycle_lr",
    "CosineAnnealingLRSchedulerConfig": "modalities.optim.configs.cosine_annealing_lr",
    "LinearWarmupCosineAnnealingLRSchedulerConfig": "modalities.optim.configs.linear_warmup_cosine_annealing_lr",
    "FSDPGradientClipperConfig": "modalities.optim.configs.fsdp_clipper",
    "FSDPLoggingOnlyGradientClipperConfig": "modalities.optim.configs.fsdp_logging_only_clipper",
    "FSDP2GradientClipperConfig": "modalities.optim.configs.fsdp2_clipper",
    "FSDP2LoggingOnlyGradientClipperConfig": "modalities.optim.configs.fsdp2_logging_only_clipper",
    "EPGradientClipperConfig": "modalities.optim.configs.ep_clipper",
    "DummyGradientClipperConfig": "modalities.optim.configs.dummy_clipper",
}
__getattr__, __dir__ = lazy_attributes(__name__, CONFIG_CLASSES)
