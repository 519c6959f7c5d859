"""Checkpoint saving (strategies, executions) and loading."""

from modalities.registry.registry import ComponentSpec

_CFG = "modalities.checkpointing.config:"

CATALOG = [
    ComponentSpec(
        "checkpoint_saving",
        "default",
        _CFG + "CheckpointSavingConfig",
        "modalities.checkpointing.saving:CheckpointSaving",
        description="Saves checkpoints following a strategy and an execution.",
        interface="CheckpointSaving",
    ),
    ComponentSpec(
        "checkpoint_saving_strategy",
        "save_every_k_steps_checkpointing_strategy",
        _CFG + "SaveEveryKStepsCheckpointingStrategyConfig",
        "modalities.checkpointing.saving:SaveEveryKStepsCheckpointingStrategy",
        description="Save every k steps, keep all.",
        interface="CheckpointSavingStrategy",
    ),
    ComponentSpec(
        "checkpoint_saving_strategy",
        "save_k_most_recent_checkpoints_strategy",
        _CFG + "SaveKMostRecentCheckpointsStrategyConfig",
        "modalities.checkpointing.saving:SaveKMostRecentCheckpointsStrategy",
        description="Save when offered, keep the k most recent (older ones deleted).",
        interface="CheckpointSavingStrategy",
    ),
    ComponentSpec(
        "checkpoint_saving_execution",
        "dcp",
        _CFG + "DCPCheckpointSavingConfig",
        "modalities.checkpointing.dcp:DCPCheckpointSaving",
        description="Sharded checkpoints with torch.distributed.checkpoint (model, optimizer, scheduler, data, RNG).",
        interface="CheckpointSavingExecution",
    ),
    ComponentSpec(
        "checkpoint_saving_execution",
        "fsdp",
        _CFG + "DCPCheckpointSavingConfig",
        "modalities.checkpointing.dcp:DCPCheckpointSaving",
        description="Same as `dcp`: FSDP2 models are saved sharded with torch.distributed.checkpoint.",
        interface="CheckpointSavingExecution",
    ),
    ComponentSpec(
        "checkpoint_saving_execution",
        "fsdp1",
        _CFG + "DCPCheckpointSavingConfig",
        "modalities.checkpointing.fsdp1:FSDP1CheckpointSaving",
        description="The reference's FSDP1 files: full model and optimizer state dicts (.bin) and "
        "last_checkpoint_info.json in checkpoint_path (warm start, not --resume).",
        interface="CheckpointSavingExecution",
    ),
    ComponentSpec(
        "checkpoint_loading",
        "dcp",
        _CFG + "DCPCheckpointLoadingConfig",
        "modalities.checkpointing.dcp:DCPCheckpointLoading",
        description="Loads model/optimizer state from a sharded checkpoint folder.",
        interface="CheckpointLoading",
    ),
    ComponentSpec(
        "checkpoint_loading",
        "fsdp",
        _CFG + "DCPCheckpointLoadingConfig",
        "modalities.checkpointing.dcp:DCPCheckpointLoading",
        description="Same as `dcp`: loads a sharded checkpoint folder into an FSDP2 model and its optimizer.",
        interface="CheckpointLoading",
    ),
    ComponentSpec(
        "checkpoint_loading",
        "torch",
        _CFG + "TorchCheckpointLoadingConfig",
        "modalities.checkpointing.torch_loading:TorchCheckpointLoading",
        description="Loads a full model state dict from a .pt file.",
        interface="CheckpointLoading",
    ),
]
