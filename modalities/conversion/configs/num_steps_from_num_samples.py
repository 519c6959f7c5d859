"""Config of ``number_conversion/num_steps_from_num_samples`` (torch-free)."""

from __future__ import annotations

from pydantic import Field

from modalities.conversion.config import GRAD_ACC_DOC, MICRO_BATCH_DOC, NonNegative, Positive, num_ranks_field
from modalities.registry.types import ComponentConfig


class NumStepsFromNumSamplesConfig(ComponentConfig):
    """Optimizer steps for a global number of samples."""

    num_ranks: int = num_ranks_field()
    local_micro_batch_size: Positive = Field(description=MICRO_BATCH_DOC)
    global_num_samples: NonNegative = Field(description="Samples across all ranks.")
    gradient_accumulation_steps: Positive = Field(description=GRAD_ACC_DOC)
