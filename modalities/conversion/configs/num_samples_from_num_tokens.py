"""Config of ``number_conversion/num_samples_from_num_tokens`` (torch-free)."""

from __future__ import annotations

from pydantic import Field

from modalities.conversion.config import SEQUENCE_LENGTH_DOC, NonNegative, Positive
from modalities.registry.types import ComponentConfig


class NumSamplesFromNumTokensConfig(ComponentConfig):
    """Whole samples of `sequence_length` tokens in `num_tokens` tokens."""

    num_tokens: NonNegative = Field(description="Tokens.")
    sequence_length: Positive = Field(description=SEQUENCE_LENGTH_DOC)
