"""Config of ``batch_sampler/default`` (torch-free)."""

from pydantic import StrictBool

from modalities.registry.types import ComponentConfig, ComponentRef, Field, PositiveStrictInt


class BatchSamplerConfig(ComponentConfig):
    """Groups a sampler's indices into batches."""

    sampler: ComponentRef["sampler"] = Field(description="The sampler whose indices are grouped.")
    batch_size: PositiveStrictInt = Field(description="Samples per batch on this rank (the micro-batch size).")
    drop_last: StrictBool = Field(default=True, description="Drop a last batch smaller than batch_size.")
