"""Config of ``number_conversion/num_seen_steps_from_checkpoint_path``,
``number_conversion/last_step_from_checkpoint_path``,
``number_conversion/global_num_seen_tokens_from_checkpoint_path``,
``number_conversion/global_num_target_tokens_from_checkpoint_path`` and
``number_conversion/num_target_steps_from_checkpoint_path`` (torch-free)."""

from __future__ import annotations

from pydantic import Field

from modalities.registry.types import ComponentConfig


class CheckpointPathConfig(ComponentConfig):
    """A count read from a checkpoint: from its name (the reference's ``eid_<id>-seen_steps_<N>-seen_tokens_<T>-
    target_steps_<S>-target_tokens_<TT>`` folders and ``.bin`` files) or, for our ``step_<N>`` folders, from the
    training progress saved in them."""

    checkpoint_path: str = Field(
        description="The checkpoint folder or file (e.g. `${settings.warmstart_checkpoint_paths.checkpoint_folder_path}`)."
    )
