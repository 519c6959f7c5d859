"""Config of ``dataset/dummy_dataset`` (torch-free)."""

from typing import Literal

from modalities.registry.types import ComponentConfig, Field, PositiveStrictInt, StrictInt


class DummySampleConfig(ComponentConfig):
    """One entry of a dummy sample: a random array of a given shape and type."""

    sample_key: str = Field(description="Key of the array in the sample.")
    sample_shape: tuple[StrictInt, ...] = Field(description="Shape of the array.")
    sample_type: Literal["float", "int"] = Field(description="`float` (standard normal) or `int` (0..511).")


class DummyDatasetConfig(ComponentConfig):
    """Random samples of given shapes, for tests and throughput measurements."""

    num_samples: PositiveStrictInt = Field(description="Number of samples in the dataset.")
    sample_definition: list[DummySampleConfig] = Field(description="The arrays each sample holds.")
    seed: StrictInt | None = Field(
        default=None, description="With a seed, sample i is the same on every access; without, it is fresh each time."
    )
