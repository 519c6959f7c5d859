"""Config of ``number_conversion/parallel_degree`` (torch-free)."""

from __future__ import annotations

from typing import Literal

from modalities.registry.types import ComponentConfig, ComponentRef, Field


class ParallelDegreeConfig(ComponentConfig):
    """The product of the sizes of some parallelism dimensions of a device mesh (e.g. the data-parallel degree)."""

    device_mesh: ComponentRef["device_mesh"] = Field(description="The device mesh to read.")
    parallelism_methods: list[Literal["dp_shard", "dp_replicate", "tp", "pp", "cp", "ep"]] = Field(
        description="Dimensions whose sizes are multiplied; a dimension absent from the mesh counts as 1."
    )
