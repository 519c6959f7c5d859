"""Config of `model/lora` (torch-free).

Modalities' LoRA config names the rank `r`, the scale `alpha` and the layers to adapt by class name
(`target_layer_class_names`, later `target_layers`); all three spellings load here.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, Field, model_validator

from modalities.registry.types import ComponentConfig, ComponentRef, PositiveStrictInt


class LoRAConfig(ComponentConfig):
    """Wraps the selected nn.Linear layers of `model` with trainable low-rank adapters; everything else freezes."""

    model: ComponentRef["model"] = Field(description="The model to adapt (changed in place and returned).")
    r: PositiveStrictInt = Field(
        validation_alias=AliasChoices("r", "rank"), description="Rank of the adapters (also accepted as `rank`)."
    )
    alpha: Annotated[float, Field(gt=0.0)] = Field(
        validation_alias=AliasChoices("alpha", "lora_alpha"),
        description="Scale numerator: the adapter's output is multiplied by alpha / r (also `lora_alpha`).",
    )
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(
        default=0.0,
        validation_alias=AliasChoices("dropout", "lora_dropout"),
        description="Dropout on the adapter's input during training (also `lora_dropout`).",
    )
    target_modules: list[str] | None = Field(
        default=None,
        description="Linear layers to adapt by name: a glob pattern matching the layer's dotted name or a tail of "
        "it (`q_proj` matches `blocks.0.attn.q_proj`; also `attn.wq`, `mlp.*`, `blocks.1.*`).",
    )
    target_layer_class_names: list[str] | None = Field(
        default=None,
        validation_alias=AliasChoices("target_layer_class_names", "target_layers"),
        description="Adapt every Linear layer inside modules of these class names (e.g. `LlamaSdpaAttention`), "
        "or Linear layers of a Linear subclass named here (also accepted as `target_layers`).",
    )
    adapter_path: str | None = Field(
        default=None,
        description="A file written by `save_lora_adapters`: its adapter weights are loaded after wrapping.",
    )

    @model_validator(mode="after")
    def _check_targets(self) -> "LoRAConfig":
        if not self.target_modules and not self.target_layer_class_names:
            raise ValueError(
                "name the layers to adapt: give target_modules (layer names) and/or target_layer_class_names"
            )
        return self
