"""number_conversion components that read a data file: counts for configs, computed from the data itself."""

from __future__ import annotations

from pathlib import Path

from modalities.conversion.number_conversion import (
    num_steps_from_num_samples,
    num_steps_from_num_tokens,
    num_tokens_from_num_steps,
)


def num_tokens_from_packed_mem_map_dataset_continuous(
    dataset_path: Path,
    sequence_length: int,
    dp_degree: int,
    local_micro_batch_size: int,
    gradient_accumulation_steps: int,
    sample_key: str = "text",
    reuse_last_target: bool = True,
) -> int:
    """Tokens that whole optimizer steps consume from the dataset: its samples (as the continuous dataset cuts
    them, see pbin_header.num_continuous_samples) times sequence_length, rounded down to whole steps of
    dp_degree x local_micro_batch_size x gradient_accumulation_steps samples; 0 when not one step fits."""
    from modalities.data.pbin_header import num_continuous_samples
    from modalities.data.pbin import PackedFile

    packed = PackedFile(dataset_path, load_index=False)
    num_samples = num_continuous_samples(packed.num_tokens, sequence_length, reuse_last_target)
    steps = num_steps_from_num_tokens(
        dp_degree, local_micro_batch_size, num_samples * sequence_length, sequence_length, gradient_accumulation_steps
    )
    return num_tokens_from_num_steps(
        steps, dp_degree, local_micro_batch_size, sequence_length, gradient_accumulation_steps
    )


def num_steps_from_raw_dataset_index(
    raw_index_path: Path, num_ranks: int, local_micro_batch_size: int, gradient_accumulation_steps: int
) -> int:
    """Whole optimizer steps for one pass over the documents of a raw index: documents // num_ranks //
    local_micro_batch_size // gradient_accumulation_steps (0 when not one step fits)."""
    from modalities.data.raw_index import read_raw_index

    num_documents = len(read_raw_index(raw_index_path))
    return num_steps_from_num_samples(num_ranks, local_micro_batch_size, num_documents, gradient_accumulation_steps)
