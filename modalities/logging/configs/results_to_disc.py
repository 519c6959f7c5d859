"""Config of ``results_subscriber/to_disc`` (torch-free)."""

from __future__ import annotations

from modalities.registry.types import ComponentConfig, Field


class EvaluationResultToDiscSubscriberConfig(ComponentConfig):
    """Appends every training and evaluation result as one JSON line to a file (rank 0)."""

    output_file_path: str = Field(description="The JSONL file (created with its folder; appended to).")
