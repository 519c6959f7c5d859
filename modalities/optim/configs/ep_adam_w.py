"""Config of ``optimizer/ep_adam_w`` (torch-free)."""

from __future__ import annotations

from pydantic import Field

from modalities.optim.configs.adam import AdamWOptimizerConfig
from modalities.registry.types import ComponentRef


class EPAdamWOptimizerConfig(AdamWOptimizerConfig):
    """AdamW for an expert-parallel model (the reference's ep_adam_w): the same update as adam_w; the parameters
    are grouped by their mesh as well as by weight decay, so torch's multi-tensor kernels never mix meshes."""

    device_mesh: ComponentRef["device_mesh"] | None = Field(
        default=None, description="The device mesh (the reference's field); each parameter's own mesh is used."
    )
