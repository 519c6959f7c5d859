"""Config of ``number_conversion/local_num_batches_from_num_samples`` (torch-free)."""

from __future__ import annotations

from pydantic import Field

from modalities.conversion.config import MICRO_BATCH_DOC, NonNegative, Positive, num_ranks_field
from modalities.registry.types import ComponentConfig


class LocalNumBatchesFromNumSamplesConfig(ComponentConfig):
    """Batches each rank sees for a global number of samples: samples // ranks // micro_batch."""

    num_ranks: int = num_ranks_field()
    global_num_samples: NonNegative = Field(description="Samples across all ranks.")
    local_micro_batch_size: Positive = Field(description=MICRO_BATCH_DOC)
