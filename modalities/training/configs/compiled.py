"""Config of ``model/compiled`` (torch-free)."""

from __future__ import annotations

from pydantic import model_validator

from modalities.registry.types import ComponentConfig, ComponentRef, Field, warn_config


class CompiledModelConfig(ComponentConfig):
    """torch.compile each block in place (state-dict names unchanged, so checkpoints stay compatible)."""

    model: ComponentRef["model"] = Field(description="The model whose blocks are compiled.")
    block_names: list[str] = Field(
        description="Class names of the blocks to compile one by one; an empty list leaves the model as it is."
    )
    fullgraph: bool = Field(default=True, description="Require each block to compile into a single graph.")
    debug: bool | None = Field(default=False, description="Trace the compilation (inductor's trace.enabled).")
    backend: str = Field(default="inductor", description="torch.compile backend (`inductor`, `aot_eager`, `eager`).")

    @model_validator(mode="after")
    def _warn_when_nothing_is_compiled(self) -> "CompiledModelConfig":
        if not self.block_names:
            warn_config("block_names is empty: the model is not compiled (as in the reference)", field="block_names")
        return self
