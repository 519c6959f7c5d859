"""Components a test plugin registers: optimizer-like variants, a model, and a trainer-like component whose
fields take other components by kind. Imported by ``--plugin tests.schema.plugins.toy_components``."""

from __future__ import annotations

from typing import Literal

from modalities.registry import register_component
from modalities.registry.types import ComponentConfig, ComponentRef, Field, PositiveStrictInt


class ToyModelConfig(ComponentConfig):
    """A model with a width."""

    width: PositiveStrictInt = Field(description="Hidden width of the toy model.")


class ToySgdConfig(ComponentConfig):
    """Plain gradient descent."""

    wrapped_model: ComponentRef["model"] = Field(description="The model whose parameters are optimized.")
    lr: float = Field(description="Learning rate.")
    momentum: float = Field(0.0, description="Momentum factor.")


class ToyAdamConfig(ComponentConfig):
    """Adam with two betas."""

    wrapped_model: ComponentRef["model"] = Field(description="The model whose parameters are optimized.")
    lr: float = Field(description="Learning rate.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Coefficients of the running averages.")
    amsgrad: bool = Field(False, description="Use the AMSGrad variant.")


class ToyTrainerConfig(ComponentConfig):
    """Trains a model with an optimizer for a number of steps."""

    optimizer: ComponentRef["optimizer"] = Field(description="The optimizer to step.")
    num_steps: PositiveStrictInt = Field(description="Steps to train; may be a number_conversion component.")
    schedule: Literal["constant", "cosine"] = Field("constant", description="Learning-rate schedule.")
    callbacks: list[ComponentRef["optimizer", "model"]] = Field(
        default_factory=list, description="Components told about each step."
    )


def toy_model(width: int) -> dict:
    """A toy model."""
    return {"width": width}


def toy_sgd(**kwargs) -> dict:
    """A toy SGD optimizer."""
    return {"kind": "sgd", **kwargs}


def toy_adam(**kwargs) -> dict:
    """A toy Adam optimizer."""
    return {"kind": "adam", **kwargs}


def toy_trainer(**kwargs) -> dict:
    """A toy trainer."""
    return kwargs


def register(registry) -> None:
    registry.register(component_key="model", variant_key="toy_model", custom_component=toy_model,
                      custom_config=ToyModelConfig)
    registry.register(component_key="optimizer", variant_key="toy_sgd", custom_component=toy_sgd,
                      custom_config=ToySgdConfig)
    registry.register(component_key="optimizer", variant_key="toy_adam", custom_component=toy_adam,
                      custom_config=ToyAdamConfig)
    registry.register(component_key="toy_trainer", variant_key="default", custom_component=toy_trainer,
                      custom_config=ToyTrainerConfig, description="A trainer from a test plugin.")


if __name__ != "__main__":
    from modalities.registry import default_registry

    registry = default_registry()
    if ("toy_trainer", "default") not in registry:
        register(registry)
