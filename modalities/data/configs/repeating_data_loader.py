"""Config of ``data_loader/repeating_data_loader`` (torch-free)."""

from pydantic import StrictBool

from modalities.registry.types import ComponentConfig, ComponentRef, Field, PositiveStrictInt


class RepeatingDataLoaderConfig(ComponentConfig):
    """Runs a data loader for several epochs in a row."""

    dataloader: ComponentRef["data_loader"] = Field(description="The loader to repeat.")  # noqa: F821
    num_epochs: PositiveStrictInt = Field(description="Number of passes over the loader.")
    reshuffle_after_epoch: StrictBool = Field(
        default=False, description="Give each pass a new permutation (sampler epoch = pass number)."
    )
