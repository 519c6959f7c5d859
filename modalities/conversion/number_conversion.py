"""Integer arithmetic between samples, tokens, batches and optimizer steps.

Every function rounds down: a partial batch or step is never counted, matching what the data loader and the
training loop really do.
"""

from __future__ import annotations

from typing import Callable


def local_num_batches_from_num_samples(num_ranks: int, global_num_samples: int, local_micro_batch_size: int) -> int:
    return global_num_samples // num_ranks // local_micro_batch_size


def local_num_batches_from_num_tokens(
    num_ranks: int, global_num_tokens: int, sequence_length: int, local_micro_batch_size: int
) -> int:
    return local_num_batches_from_num_samples(num_ranks, global_num_tokens // sequence_length, local_micro_batch_size)


def num_steps_from_num_samples(
    num_ranks: int, local_micro_batch_size: int, global_num_samples: int, gradient_accumulation_steps: int
) -> int:
    return global_num_samples // num_ranks // local_micro_batch_size // gradient_accumulation_steps


def num_steps_from_num_tokens(
    dp_degree: int,
    local_micro_batch_size: int,
    global_num_tokens: int,
    sequence_length: int,
    gradient_accumulation_steps: int,
) -> int:
    return num_steps_from_num_samples(
        dp_degree, local_micro_batch_size, global_num_tokens // sequence_length, gradient_accumulation_steps
    )


def num_tokens_from_num_steps(
    num_steps: int, dp_degree: int, local_micro_batch_size: int, sequence_length: int, gradient_accumulation_steps: int
) -> int:
    return num_steps * dp_degree * local_micro_batch_size * sequence_length * gradient_accumulation_steps


def num_tokens_from_num_steps_callable(
    dp_degree: int, local_micro_batch_size: int, sequence_length: int, gradient_accumulation_steps: int
) -> Callable[[int], int]:
    tokens_per_step = dp_degree * local_micro_batch_size * sequence_length * gradient_accumulation_steps

    def num_tokens(num_steps: int) -> int:
        return num_steps * tokens_per_step

    return num_tokens


def num_samples_from_num_tokens(num_tokens: int, sequence_length: int) -> int:
    return num_tokens // sequence_length
