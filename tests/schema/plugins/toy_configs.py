"""Components of a test plugin: optimizer-like variants, a model, and a trainer-like component whose fields
take other components by kind. Importing this module registers nothing; ``toy_plugin`` (what ``--plugin``
imports) and the tests call :func:`register`."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

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

    @model_validator(mode="after")
    def _betas_below_one(self) -> "ToyAdamConfig":
        """both betas lie in [0, 1)"""
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must lie in [0, 1), got {self.betas}")
        return self


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


TOY_OPTIMIZERS = ("toy_adam", "toy_sgd")


def register(registry) -> None:
    rows = [
        ("model", "toy_model", toy_model, ToyModelConfig),
        ("optimizer", "toy_sgd", toy_sgd, ToySgdConfig),
        ("optimizer", "toy_adam", toy_adam, ToyAdamConfig),
        ("toy_trainer", "default", toy_trainer, ToyTrainerConfig),
    ]
    for component_key, variant_key, builder, config in rows:
        registry.register(
            component_key=component_key, variant_key=variant_key, custom_component=builder, custom_config=config
        )
