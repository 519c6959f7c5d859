"""Configs of the training components (torch-free).

Each config class is defined in a module of its own under ``configs/`` and imported from there when first asked
for: ``modalities.training.config.X`` works for every name below, and `modalities validate` defines only the
classes a config names (see registry/lazy.py).
"""

from __future__ import annotations

from modalities.registry.lazy import lazy_attributes

_CONFIGS = "modalities.training.configs."

# class name -> the module that defines it
CONFIG_CLASSES = {
    "PrecisionEnum": _CONFIGS + "mixed_precision",
    "MixedPrecisionSettings": _CONFIGS + "mixed_precision",
    "DeviceMeshConfig": _CONFIGS + "device_mesh",
    "ParallelDegreeConfig": _CONFIGS + "parallel_degree",
    "RawAppStateConfig": _CONFIGS + "raw_app_state",
    "DCPAppStateConfig": _CONFIGS + "dcp_app_state",
    "FSDP2WrappedModelConfig": _CONFIGS + "fsdp2_wrapped",
    "EPWrappedModelConfig": _CONFIGS + "ep_wrapped",
    "ShardingStrategy": _CONFIGS + "fsdp1_common",
    "FSDP1MixedPrecision": _CONFIGS + "fsdp1_common",
    "FSDP1WrappedModelConfig": _CONFIGS + "fsdp1_wrapped",
    "FSDP1ActivationCheckpointedModelConfig": _CONFIGS + "fsdp1_activation_checkpointed",
    "FSDP1CheckpointedModelConfig": _CONFIGS + "fsdp1_checkpointed_model",
    "FSDP1CheckpointedOptimizerConfig": _CONFIGS + "fsdp1_checkpointed_optimizer",
    "FSDP1CheckpointLoadingConfig": _CONFIGS + "fsdp1_checkpoint_loading",
    "ActivationCheckpointingVariant": _CONFIGS + "activation_checkpointed",
    "ActivationCheckpointingParams": _CONFIGS + "activation_checkpointed",
    "ActivationCheckpointedModelConfig": _CONFIGS + "activation_checkpointed",
    "CompiledModelConfig": _CONFIGS + "compiled",
    "CheckpointedModelConfig": _CONFIGS + "checkpointed_model",
    "CheckpointedOptimizerConfig": _CONFIGS + "checkpointed_optimizer",
}
# other public names -> their module
_VALUES = {
    "FSDP1_PRECISION": _CONFIGS + "fsdp1_common",
    "SAVEABLE_OPS": _CONFIGS + "activation_checkpointed",
}
__getattr__, __dir__ = lazy_attributes(__name__, {**CONFIG_CLASSES, **_VALUES})
