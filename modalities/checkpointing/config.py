"""Configs of checkpoint saving and loading (torch-free).

Each config class is defined in a module of its own under ``configs/`` and imported from there when first asked for:
``modalities.checkpointing.config.X`` works for every class in CONFIG_CLASSES, and `modalities validate` defines
only the classes a config names (see registry/lazy.py). This module holds what they share.
"""

from __future__ import annotations

from modalities.registry.lazy import lazy_attributes

# Both spellings of a dtype: the reference's checkpoint loading says FP32/BF16/FP16, its mixed precision FP_32/...
PRECISION_ALIASES = {"FP32": "FP_32", "FP16": "FP_16", "BF16": "BF_16"}


# class name -> the module that defines it
CONFIG_CLASSES = {
    "CheckpointSavingConfig": "modalities.checkpointing.configs.checkpoint_saving",
    "SaveEveryKStepsCheckpointingStrategyConfig": "modalities.checkpointing.configs.save_every_k_steps",
    "SaveKMostRecentCheckpointsStrategyConfig": "modalities.checkpointing.configs.save_k_most_recent",
    "DCPCheckpointSavingConfig": "modalities.checkpointing.configs.dcp_saving",
    "DCPCheckpointLoadingConfig": "modalities.checkpointing.configs.dcp_loading",
    "TorchCheckpointLoadingConfig": "modalities.checkpointing.configs.torch_loading",
}
__getattr__, __dir__ = lazy_attributes(__name__, CONFIG_CLASSES)
