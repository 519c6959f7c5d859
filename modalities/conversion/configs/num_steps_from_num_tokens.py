"""Config of ``number_conversion/num_steps_from_num_tokens`` (torch-free)."""

from __future__ import annotations

from pydantic import Field

from modalities.conversion.config import (
    GRAD_ACC_DOC,
    MICRO_BATCH_DOC,
    SEQUENCE_LENGTH_DOC,
    NonNegative,
    Positive,
    dp_degree_field,
)
from modalities.registry.types import ComponentConfig


class NumStepsFromNumTokensConfig(ComponentConfig):
    """Optimizer steps for a global number of tokens."""

    dp_degree: int = dp_degree_field()
    local_micro_batch_size: Positive = Field(description=MICRO_BATCH_DOC)
    global_num_tokens: NonNegative = Field(description="Tokens across all ranks.")
    sequence_length: Positive = Field(description=SEQUENCE_LENGTH_DOC)
    gradient_accumulation_steps: Positive = Field(description=GRAD_ACC_DOC)
