"""Config of ``results_subscriber/rich`` (torch-free)."""

from __future__ import annotations

from modalities.registry.types import ComponentConfig, Field, PositiveStrictInt, StrictInt


class RichResultSubscriberConfig(ComponentConfig):
    """Prints each training and evaluation result as a table on rank 0."""

    global_rank: StrictInt = Field(ge=0, description="This process's rank; only rank 0 prints.")
    num_ranks: PositiveStrictInt | None = Field(default=None, description="Accepted for compatibility; unused.")
