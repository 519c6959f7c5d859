"""Configs of the ``number_conversion`` components (torch-free).

Every count is a strict integer: ``1e6`` or ``"1000"`` in a YAML file is an error, not a silent conversion.
``dp_degree`` is also accepted under the older name ``num_ranks`` that earlier Modalities configs use.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, Field

from modalities.registry.types import ComponentConfig

Positive = Annotated[int, Field(strict=True, gt=0)]
NonNegative = Annotated[int, Field(strict=True, ge=0)]


def dp_degree_field() -> object:
    return Field(
        validation_alias=AliasChoices("dp_degree", "num_ranks"),
        strict=True,
        gt=0,
        description="Number of data-parallel ranks (also accepted as `num_ranks`).",
    )


def num_ranks_field() -> object:
    return Field(
        validation_alias=AliasChoices("num_ranks", "dp_degree"),
        strict=True,
        gt=0,
        description="Number of data-parallel ranks (also accepted as `dp_degree`).",
    )


_MICRO_BATCH = "Samples per rank in one forward/backward pass (the local micro-batch size)."
_SEQUENCE_LENGTH = "Tokens per sample."
_GRAD_ACC = "Micro-batches accumulated into one optimizer step."


class LocalNumBatchesFromNumSamplesConfig(ComponentConfig):
    """Batches each rank sees for a global number of samples: samples // ranks // micro_batch."""

    num_ranks: int = num_ranks_field()
    global_num_samples: NonNegative = Field(description="Samples across all ranks.")
    local_micro_batch_size: Positive = Field(description=_MICRO_BATCH)


class LocalNumBatchesFromNumTokensConfig(ComponentConfig):
    """Batches each rank sees for a global number of tokens: tokens // seq_len // ranks // micro_batch."""

    num_ranks: int = num_ranks_field()
    global_num_tokens: NonNegative = Field(description="Tokens across all ranks.")
    sequence_length: Positive = Field(description=_SEQUENCE_LENGTH)
    local_micro_batch_size: Positive = Field(description=_MICRO_BATCH)


class NumStepsFromNumSamplesConfig(ComponentConfig):
    """Optimizer steps for a global number of samples."""

    num_ranks: int = num_ranks_field()
    local_micro_batch_size: Positive = Field(description=_MICRO_BATCH)
    global_num_samples: NonNegative = Field(description="Samples across all ranks.")
    gradient_accumulation_steps: Positive = Field(description=_GRAD_ACC)


class NumStepsFromNumTokensConfig(ComponentConfig):
    """Optimizer steps for a global number of tokens."""

    dp_degree: int = dp_degree_field()
    local_micro_batch_size: Positive = Field(description=_MICRO_BATCH)
    global_num_tokens: NonNegative = Field(description="Tokens across all ranks.")
    sequence_length: Positive = Field(description=_SEQUENCE_LENGTH)
    gradient_accumulation_steps: Positive = Field(description=_GRAD_ACC)


class NumTokensFromNumStepsConfig(ComponentConfig):
    """Global tokens consumed by a number of optimizer steps."""

    num_steps: NonNegative = Field(description="Optimizer steps.")
    dp_degree: int = dp_degree_field()
    local_micro_batch_size: Positive = Field(description=_MICRO_BATCH)
    sequence_length: Positive = Field(description=_SEQUENCE_LENGTH)
    gradient_accumulation_steps: Positive = Field(description=_GRAD_ACC)


class NumTokensFromNumStepsCallableConfig(ComponentConfig):
    """A function of the step count returning the global tokens consumed by that many steps."""

    dp_degree: int = dp_degree_field()
    local_micro_batch_size: Positive = Field(description=_MICRO_BATCH)
    sequence_length: Positive = Field(description=_SEQUENCE_LENGTH)
    gradient_accumulation_steps: Positive = Field(description=_GRAD_ACC)


class NumSamplesFromNumTokensConfig(ComponentConfig):
    """Whole samples of `sequence_length` tokens in `num_tokens` tokens."""

    num_tokens: NonNegative = Field(description="Tokens.")
    sequence_length: Positive = Field(description=_SEQUENCE_LENGTH)


class CheckpointPathConfig(ComponentConfig):
    """A count read from a checkpoint: from its name (the reference's ``eid_<id>-seen_steps_<N>-seen_tokens_<T>-
    target_steps_<S>-target_tokens_<TT>`` folders and ``.bin`` files) or, for our ``step_<N>`` folders, from the
    training progress saved in them."""

    checkpoint_path: str = Field(description="The checkpoint folder or file (e.g. `${settings.warmstart_checkpoint_paths.checkpoint_folder_path}`).")
