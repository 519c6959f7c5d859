"""Small torch-free components that exercise references, nesting and lists in compiler tests."""

from typing import Literal

from pydantic import BaseModel, Field

from modalities.registry import Registry
from modalities.registry.types import ComponentConfig, ComponentRef


class ToyModelConfig(ComponentConfig):
    width: int = Field(strict=True, gt=0, description="Width.")
    activation: Literal["relu", "gelu"] = Field("relu", description="Activation.")


class ToyModel:
    def __init__(self, width, activation):
        self.width, self.activation = width, activation


class HeadConfig(ComponentConfig):
    size: int = Field(strict=True, description="Head size.")


class ToyComposedConfig(ComponentConfig):
    backbone: ComponentRef["toy_model"] = Field(description="Backbone.")
    head: HeadConfig = Field(description="Head settings.")


class ToyOptimizerConfig(ComponentConfig):
    model: ComponentRef["toy_model"] = Field(description="Model to optimize.")
    lr: float = Field(description="Learning rate.")
    steps: int = Field(0, strict=True, ge=0, description="Steps.")


class ToyOptimizer:
    def __init__(self, model, lr, steps):
        self.model, self.lr, self.steps = model, lr, steps


class ToyDatasetConfig(ComponentConfig):
    size: int = Field(strict=True, description="Number of samples.")


class ToyLoaderConfig(ComponentConfig):
    datasets: list[ComponentRef["toy_dataset"]] = Field(description="Datasets.")


class FailingConfig(ComponentConfig):
    pass


def failing_builder():
    raise RuntimeError("disk on fire")


class PlainUserConfig(BaseModel):  # a user's class that does not forbid extra fields itself
    name: str


def register_toys(registry: Registry) -> Registry:
    r = registry
    r.register(component_key="toy_model", variant_key="linear", custom_component=ToyModel, custom_config=ToyModelConfig)
    r.register(
        component_key="toy_model",
        variant_key="composed",
        custom_component=lambda backbone, head: ("composed", backbone, head),
        custom_config=ToyComposedConfig,
    )
    r.register(
        component_key="toy_optimizer", variant_key="sgd", custom_component=ToyOptimizer, custom_config=ToyOptimizerConfig
    )
    r.register(
        component_key="toy_dataset",
        variant_key="range",
        custom_component=lambda size: list(range(size)),
        custom_config=ToyDatasetConfig,
    )
    r.register(
        component_key="toy_loader", variant_key="multi", custom_component=lambda datasets: datasets, custom_config=ToyLoaderConfig
    )
    r.register(component_key="toy_failing", variant_key="x", custom_component=failing_builder, custom_config=FailingConfig)
    r.register(component_key="toy_plain", variant_key="x", custom_component=lambda name: name, custom_config=PlainUserConfig)
    return r
