"""Config of ``model/ep_wrapped`` (torch-free)."""

from __future__ import annotations

from modalities.registry.types import ComponentConfig, ComponentRef, Field
from modalities.training.configs.mixed_precision import MixedPrecisionSettings


class EPWrappedModelConfig(ComponentConfig):
    """Expert parallelism of a model/moe: each block's experts split over the mesh's expert-parallel ranks, every
    token sent to the rank of its expert and back (all-to-all). Wrap the result with fsdp2_wrapped, which shards
    the experts over the data-parallel ranks that hold the same ones."""

    model: ComponentRef["model"] = Field(description="The model/moe (or its pipeline parts), before TP and FSDP2.")
    device_mesh: ComponentRef["device_mesh"] = Field(
        description="The mesh: its `ep` dimension (device_mesh.config.expert_parallel_degree), or the dimension "
        "ep_mesh_dim_name names."
    )
    block_names: list[str] = Field(
        min_length=1, description="Class names of the blocks holding experts (`[TransformerBlock]`)."
    )
    ep_mesh_dim_name: str | None = Field(
        default=None,
        description="The reference's older spelling: the mesh dimension the experts are split over, e.g. `tp` in a "
        "mesh without tensor parallelism; its ranks then read their own data and average their gradients like "
        "data-parallel ranks. Leave it out for the `ep` dimension of expert_parallel_degree.",
    )
    mixed_precision_settings: MixedPrecisionSettings | None = Field(
        default=None,
        description="Accepted as in the reference. The experts are cast by model/fsdp2_wrapped's mixed-precision "
        "policy, like every other parameter (this setting must not contradict it).",
    )
