"""Config of ``model/fsdp2_wrapped`` (torch-free)."""

from __future__ import annotations

from modalities.registry.types import ComponentConfig, ComponentRef, Field, PositiveStrictInt
from modalities.training.configs.mixed_precision import MixedPrecisionSettings


class FSDP2WrappedModelConfig(ComponentConfig):
    """A model sharded with FSDP2 `fully_shard`: once per block, then at the root."""

    model: ComponentRef["model"] = Field(description="The model to shard (may live on the meta device).")
    device_mesh: ComponentRef["device_mesh"] = Field(description="The mesh the model is sharded over.")
    block_names: list[str] = Field(
        min_length=1, description="Class names of the blocks each sharded on its own (e.g. `[GPT2Block]`)."
    )
    mixed_precision_settings: MixedPrecisionSettings = Field(
        default_factory=MixedPrecisionSettings, description="Parameter and gradient-reduction dtypes."
    )
    reshard_after_forward: bool = Field(
        default=True, description="Free gathered parameters after forward (less memory, one more all-gather)."
    )
    layers_per_fsdp_unit: PositiveStrictInt = Field(
        default=1, description="Consecutive blocks sharded as one unit (gathered together)."
    )
