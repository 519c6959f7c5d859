"""Config of ``sampler/resumable_distributed_sampler`` (torch-free)."""

from pydantic import StrictBool

from modalities.data.config import DATASET_DOC
from modalities.data.configs.ranked_sampler import _RankedSamplerConfig
from modalities.registry.types import ComponentRef, Field, NonNegativeStrictInt, PositiveStrictInt, StrictInt


class ResumableDistributedSamplerConfig(_RankedSamplerConfig):
    """A distributed sampler that starts after a number of samples already consumed globally."""

    dataset: ComponentRef["dataset"] = Field(description=DATASET_DOC)
    rank: NonNegativeStrictInt = Field(description="Data-parallel rank of this process.")
    num_replicas: PositiveStrictInt = Field(description="Number of data-parallel ranks.")
    epoch: NonNegativeStrictInt = Field(default=0, description="Epoch to start in (selects the permutation).")
    shuffle: StrictBool = Field(default=False, description="Permute the indices (the same on every rank).")
    seed: StrictInt = Field(default=0, description="Seed of the permutation; epoch e uses seed + e.")
    drop_last: StrictBool = Field(
        default=True, description="Drop the tail that does not divide evenly; false pads by repeating indices."
    )
    skip_num_global_samples: NonNegativeStrictInt = Field(
        default=0,
        description="Samples of the starting epoch already consumed by all ranks together (when resuming).",
    )
