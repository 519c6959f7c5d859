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


# --- counts of a checkpoint, for warm starts --------------------------------------------------------------------

_NAME_FIELDS = {
    "num_seen_steps": r"seen_steps_(\d+)",
    "global_num_seen_tokens": r"seen_tokens_(\d+)",
    "num_target_steps": r"target_steps_(\d+)",
    "num_target_tokens": r"target_tokens_(\d+)",
}


def _checkpoint_count(checkpoint_path: str, field: str) -> int:
    """The count ``field`` of a checkpoint: from its name if the name carries it, else from the
    training_progress.json of one of our checkpoint folders."""
    import json
    import re
    from pathlib import Path

    path = Path(checkpoint_path)
    matches = re.findall(_NAME_FIELDS[field], path.name)
    if len(matches) == 1:
        return int(matches[0])
    if len(matches) > 1:
        raise ValueError(f"{checkpoint_path}: the name holds {field} more than once: {matches}")
    progress_file = path / "training_progress.json"
    if path.is_symlink() or path.is_dir():
        progress_file = path.resolve() / "training_progress.json"
    if not progress_file.is_file():
        pattern = _NAME_FIELDS[field].replace(r"(\d+)", "<n>")
        raise ValueError(
            f"{checkpoint_path}: neither its name (no '{pattern}') nor a training_progress.json in it tells the "
            f"checkpoint's {field}"
        )
    try:
        progress = json.loads(progress_file.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{progress_file}: cannot read the training progress: {e}") from None
    value = progress.get(field)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{progress_file} records no {field} (checkpoints written before it was kept lack it)")
    return value


def num_seen_steps_from_checkpoint_path(checkpoint_path: str) -> int:
    return _checkpoint_count(checkpoint_path, "num_seen_steps")


def last_step_from_checkpoint_path(checkpoint_path: str) -> int:
    return _checkpoint_count(checkpoint_path, "num_seen_steps") - 1


def global_num_seen_tokens_from_checkpoint_path(checkpoint_path: str) -> int:
    return _checkpoint_count(checkpoint_path, "global_num_seen_tokens")


def global_num_target_tokens_from_checkpoint_path(checkpoint_path: str) -> int:
    return _checkpoint_count(checkpoint_path, "num_target_tokens")


def num_target_steps_from_checkpoint_path(checkpoint_path: str) -> int:
    """Target tokens divided by the tokens of one step (seen tokens over seen steps), as the reference does."""
    seen_steps = num_seen_steps_from_checkpoint_path(checkpoint_path)
    if seen_steps == 0:
        raise ValueError(f"{checkpoint_path}: no step was done, so the tokens per step are unknown")
    tokens_per_step, remainder = divmod(global_num_seen_tokens_from_checkpoint_path(checkpoint_path), seen_steps)
    target_tokens = global_num_target_tokens_from_checkpoint_path(checkpoint_path)
    if remainder or target_tokens % tokens_per_step:
        raise ValueError(
            f"{checkpoint_path}: the target tokens ({target_tokens}) are not a whole number of steps of "
            f"{tokens_per_step} tokens"
        )
    return target_tokens // tokens_per_step
