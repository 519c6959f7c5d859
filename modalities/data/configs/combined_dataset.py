"""Config of ``dataset/combined`` (torch-free)."""

from modalities.registry.types import ComponentConfig, ComponentRef, Field


class CombinedDatasetConfig(ComponentConfig):
    """Several datasets read one after the other as one dataset."""

    datasets: list[ComponentRef["dataset"]] = Field(  # noqa: F821
        min_length=1, description="The datasets, in order; their samples must have the same keys."
    )
