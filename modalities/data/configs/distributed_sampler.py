"""Config of ``sampler/distributed_sampler`` (torch-free)."""

from pydantic import StrictBool

from modalities.data.config import DATASET_DOC
from modalities.data.configs.ranked_sampler import _RankedSamplerConfig
from modalities.registry.types import ComponentRef, Field, NonNegativeStrictInt, PositiveStrictInt, StrictInt


class DistributedSamplerConfig(_RankedSamplerConfig):
    """Each rank draws its share of the dataset's indices; shuffling is seeded by seed + epoch."""

    rank: NonNegativeStrictInt = Field(description="Data-parallel rank of this process.")
    num_replicas: PositiveStrictInt = Field(description="Number of data-parallel ranks.")
    shuffle: StrictBool = Field(description="Permute the indices (the same permutation on every rank).")
    dataset: ComponentRef["dataset"] = Field(description=DATASET_DOC)
    seed: StrictInt = Field(default=0, description="Seed of the permutation; epoch e uses seed + e.")
    drop_last: StrictBool = Field(
        default=True, description="Drop the tail that does not divide evenly; false pads by repeating indices."
    )
