"""Configs of the ``number_conversion`` components (torch-free).

Every count is a strict integer: ``1e6`` or ``"1000"`` in a YAML file is an error, not a silent conversion.
``dp_degree`` is also accepted under the older name ``num_ranks`` that earlier Modalities configs use.

Each config class is defined in a module of its own under ``configs/`` and imported from there when first asked for:
``modalities.conversion.config.X`` works for every class in CONFIG_CLASSES, and `modalities validate` defines only
the classes a config names (see registry/lazy.py). This module holds what they share.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, Field

from modalities.registry.lazy import lazy_attributes

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


MICRO_BATCH_DOC = "Samples per rank in one forward/backward pass (the local micro-batch size)."
SEQUENCE_LENGTH_DOC = "Tokens per sample."
GRAD_ACC_DOC = "Micro-batches accumulated into one optimizer step."


# class name -> the module that defines it
CONFIG_CLASSES = {
    "LocalNumBatchesFromNumSamplesConfig": "modalities.conversion.configs.local_num_batches_from_num_samples",
    "LocalNumBatchesFromNumTokensConfig": "modalities.conversion.configs.local_num_batches_from_num_tokens",
    "NumStepsFromNumSamplesConfig": "modalities.conversion.configs.num_steps_from_num_samples",
    "NumStepsFromNumTokensConfig": "modalities.conversion.configs.num_steps_from_num_tokens",
    "NumTokensFromNumStepsConfig": "modalities.conversion.configs.num_tokens_from_num_steps",
    "NumTokensFromNumStepsCallableConfig": "modalities.conversion.configs.num_tokens_from_num_steps_callable",
    "NumSamplesFromNumTokensConfig": "modalities.conversion.configs.num_samples_from_num_tokens",
    "CheckpointPathConfig": "modalities.conversion.configs.from_checkpoint_path",
}
__getattr__, __dir__ = lazy_attributes(__name__, CONFIG_CLASSES)
