"""Config of ``data_loader/default`` (torch-free)."""

from pydantic import StrictBool, model_validator

from modalities.registry.types import ComponentConfig, ComponentRef, Field, NonNegativeStrictInt, PositiveStrictInt


class LLMDataLoaderConfig(ComponentConfig):
    """A torch DataLoader that knows its tag and can report and restore its position."""

    dataloader_tag: str = Field(description="Name of the loader in logs and results, e.g. `train` or `test`.")
    dataset: ComponentRef["dataset"] = Field(description="The dataset to load from.")
    batch_sampler: ComponentRef["batch_sampler"] = Field(description="Yields the index batches.")
    collate_fn: ComponentRef["collate_fn"] | None = Field(
        default=None, description="Turns a list of samples into a batch; torch's default collation when absent."
    )
    num_workers: NonNegativeStrictInt = Field(description="Loader worker processes (0 loads in the main process).")
    pin_memory: StrictBool = Field(description="Pin batches in page-locked memory for faster host-to-GPU copies.")
    skip_num_batches: NonNegativeStrictInt = Field(
        default=0, description="Batches of the first epoch to skip without loading them (when resuming)."
    )
    fixed_num_batches: PositiveStrictInt | None = Field(
        default=None, description="Cut each epoch to this many batches (counting skipped ones)."
    )

    @model_validator(mode="after")
    def _fixed_after_skip(self):
        if self.fixed_num_batches is not None and self.fixed_num_batches <= self.skip_num_batches:
            raise ValueError(
                f"fixed_num_batches ({self.fixed_num_batches}) must be larger than skip_num_batches "
                f"({self.skip_num_batches})"
            )
        return self
