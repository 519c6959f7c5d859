"""Config of ``model/activation_checkpointed_fsdp1`` (torch-free)."""

from __future__ import annotations

from modalities.registry.types import ComponentConfig, ComponentRef, Field, empty_list


class FSDP1ActivationCheckpointedModelConfig(ComponentConfig):
    """Activation checkpointing of the named module classes of an (FSDP1-spelled) sharded model."""

    model: ComponentRef["model"] = Field(description="The sharded model.")
    activation_checkpointing_modules: list[str] = Field(
        default_factory=empty_list, description="Class names of the modules to checkpoint (e.g. `[GPT2Block]`)."
    )
