"""Config of ``sampler/resumable_distributed_multi_dim_sampler`` (torch-free)."""

from typing import Literal

from pydantic import StrictBool

from modalities.data.config import DATASET_DOC
from modalities.registry.types import ComponentConfig, ComponentRef, Field, NonNegativeStrictInt, StrictInt


class ResumableDistributedMultiDimSamplerConfig(ComponentConfig):
    """The resumable distributed sampler with its rank and replicas read from the device mesh: ranks that share
    a data-parallel coordinate (tensor-parallel peers) draw the same samples."""

    dataset: ComponentRef["dataset"] = Field(description=DATASET_DOC)
    device_mesh: ComponentRef["device_mesh"] = Field(description="The mesh whose data-parallel dimension is read.")
    data_parallel_key: Literal["dp_shard", "dp"] = Field(
        default="dp_shard",
        description="The data-parallel dimension of the mesh: `dp_shard` (the reference's field), or `dp` for "
        "dp_replicate x dp_shard together (torchtitan's name), which a mesh with dp_replicate > 1 needs: with "
        "`dp_shard` the replicas would read the same samples.",
    )
    epoch: NonNegativeStrictInt = Field(default=0, description="Epoch to start in (selects the permutation).")
    shuffle: StrictBool = Field(default=False, description="Permute the indices (the same on every rank).")
    seed: StrictInt = Field(default=0, description="Seed of the permutation; epoch e uses seed + e.")
    drop_last: Literal[True] = Field(default=True, description="Always true, as in the reference.")
    skip_num_global_samples: NonNegativeStrictInt = Field(
        default=0,
        description="Samples of the starting epoch already consumed by all ranks together (when resuming).",
    )
