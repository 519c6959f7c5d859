"""Config of ``sampler/sequential_sampler`` (torch-free)."""

from modalities.data.config import DATASET_DOC
from modalities.registry.types import ComponentConfig, ComponentRef, Field


class SequentialSamplerConfig(ComponentConfig):
    """Every index of a dataset in order (one process; torch's SequentialSampler)."""

    data_source: ComponentRef["dataset"] = Field(description=DATASET_DOC)
