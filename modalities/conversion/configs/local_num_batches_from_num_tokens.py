"""Config of ``number_conversion/local_num_batches_from_num_tokens`` (torch-free)."""

from __future__ import annotations

from pydantic import Field

from modalities.conversion.config import MICRO_BATCH_DOC, SEQUENCE_LENGTH_DOC, NonNegative, Positive, num_ranks_field
from modalities.registry.types import ComponentConfig


class LocalNumBatchesFromNumTokensConfig(ComponentConfig):
    """Batches each rank sees for a global number of tokens: tokens // seq_len // ranks // micro_batch."""

    num_ranks: int = num_ranks_field()
    global_num_tokens: NonNegative = Field(description="Tokens across all ranks.")
    sequence_length: Positive = Field(description=SEQUENCE_LENGTH_DOC)
    local_micro_batch_size: Positive = Field(description=MICRO_BATCH_DOC)
