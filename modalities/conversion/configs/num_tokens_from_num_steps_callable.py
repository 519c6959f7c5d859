"""Config of ``number_conversion/num_tokens_from_num_steps_callable`` (torch-free)."""

from __future__ import annotations

from pydantic import Field

from modalities.conversion.config import GRAD_ACC_DOC, MICRO_BATCH_DOC, SEQUENCE_LENGTH_DOC, Positive, dp_degree_field
from modalities.registry.types import ComponentConfig


class NumTokensFromNumStepsCallableConfig(ComponentConfig):
    """A function of the step count returning the global tokens consumed by that many steps."""

    dp_degree: int = dp_degree_field()
    local_micro_batch_size: Positive = Field(description=MICRO_BATCH_DOC)
    sequence_length: Positive = Field(description=SEQUENCE_LENGTH_DOC)
    gradient_accumulation_steps: Positive = Field(description=GRAD_ACC_DOC)
