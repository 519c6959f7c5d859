"""Training components: device mesh, app state, model wrappers (FSDP2, activation checkpointing, compile,
checkpointed) and the parallel-degree number conversion."""

from modalities.registry.registry import ComponentSpec, RootSpec

_CFG = "modalities.training.config:"
_WRAP = "modalities.training.model_wrappers:"
_FSDP1 = "modalities.training.fsdp1:"

CATALOG = [
    ComponentSpec(
        "device_mesh", "default", _CFG + "DeviceMeshConfig", "modalities.training.device_mesh:get_device_mesh",
        description="Device mesh over the ranks (starts the process group if needed).", interface="DeviceMesh",
    ),
    ComponentSpec(
        "number_conversion", "parallel_degree", _CFG + "ParallelDegreeConfig",
        "modalities.training.device_mesh:get_parallel_degree", produces="int",
        description="Product of the sizes of device-mesh dimensions (e.g. the data-parallel degree).", interface="int",
    ),
    ComponentSpec(
        "app_state", "raw", _CFG + "RawAppStateConfig", "modalities.training.app_state:get_raw_app_state",
        description="Model, optimizer and scheduler as one checkpointable state.", interface="AppState",
    ),
    ComponentSpec(
        "model", "fsdp2_wrapped", _CFG + "FSDP2WrappedModelConfig", _WRAP + "get_fsdp2_wrapped_model",
        description="FSDP2 fully_shard per block and at the root, with a mixed-precision policy.", interface="nn.Module",
    ),
    ComponentSpec(
        "model", "fsdp_wrapped", _CFG + "FSDP1WrappedModelConfig", _FSDP1 + "get_fsdp1_wrapped_model",
        description="The reference's older name of fsdp1_wrapped.", interface="nn.Module",
    ),
    ComponentSpec(
        "model", "fsdp1_wrapped", _CFG + "FSDP1WrappedModelConfig", _FSDP1 + "get_fsdp1_wrapped_model",
        description="The reference's FSDP1 sharding, carried out with FSDP2 (mesh from the sharding strategy).",
        interface="nn.Module",
    ),
    ComponentSpec(
        "model", "activation_checkpointed_fsdp1", _CFG + "FSDP1ActivationCheckpointedModelConfig",
        _FSDP1 + "get_activation_checkpointed_fsdp1_model",
        description="Activation checkpointing of the named module classes of a sharded model.", interface="nn.Module",
    ),
    ComponentSpec(
        "model", "fsdp1_checkpointed", _CFG + "FSDP1CheckpointedModelConfig", _WRAP + "get_checkpointed_model",
        description="A model loaded from a full state dict file (the reference's FSDP1 .bin).", interface="nn.Module",
    ),
    ComponentSpec(
        "optimizer", "fsdp1_checkpointed", _CFG + "FSDP1CheckpointedOptimizerConfig", _WRAP + "get_checkpointed_optimizer",
        description="An optimizer loaded from a full optimizer state dict file (the reference's FSDP1 .bin).",
        interface="torch.optim.Optimizer",
    ),
    ComponentSpec(
        "checkpoint_loading", "fsdp1", _CFG + "FSDP1CheckpointLoadingConfig", _FSDP1 + "FSDP1CheckpointLoading",
        description="Loads a full state dict file into a plain model, then shards it (FSDP2).",
        interface="CheckpointLoading",
    ),
    ComponentSpec(
        "app_state", "dcp", _CFG + "DCPAppStateConfig", "modalities.training.app_state:get_dcp_checkpointed_app_state",
        description="An app state loaded from a DCP checkpoint folder when built (warm start).", interface="AppState",
    ),
    ComponentSpec(
        "model", "activation_checkpointed", _CFG + "ActivationCheckpointedModelConfig",
        _WRAP + "get_activation_checkpointed_model",
        description="Activation checkpointing of every block or every n-th block.", interface="nn.Module",
    ),
    ComponentSpec(
        "model", "ep_wrapped", _CFG + "EPWrappedModelConfig", "modalities.models.moe.expert_parallel:get_ep_wrapped_model",
        description="Expert parallelism: each MoE block's experts split over the mesh's ep ranks, tokens sent to "
        "their experts by all-to-all; wrap it with fsdp2_wrapped.", interface="nn.Module",
    ),
    ComponentSpec(
        "model", "compiled", _CFG + "CompiledModelConfig", _WRAP + "get_compiled_model",
        description="torch.compile per block, in place.", interface="nn.Module",
    ),
    ComponentSpec(
        "model", "checkpointed", _CFG + "CheckpointedModelConfig", _WRAP + "get_checkpointed_model",
        description="A model with weights loaded from a checkpoint.", interface="nn.Module",
    ),
    ComponentSpec(
        "optimizer", "checkpointed", _CFG + "CheckpointedOptimizerConfig", _WRAP + "get_checkpointed_optimizer",
        description="An optimizer with its state loaded from a checkpoint folder.", interface="torch.optim.Optimizer",
    ),
]

_PIPE = "modalities.training.pipeline:"
_PIPE_CFG = "modalities.training.pipeline_config:"

CATALOG += [
    ComponentSpec(
        "stages_generator", "gpt2_stages_generator", _PIPE_CFG + "GPT2StagesGeneratorConfig",
        "modalities.training.pipeline_plan:GPT2StagesGenerator", description="Where model/gpt2 may be cut into pipeline stages.",
        interface="StagesGenerator",
    ),
    ComponentSpec(
        "stages_generator", "qwen_stages_generator", _PIPE_CFG + "QwenStagesGeneratorConfig",
        "modalities.training.pipeline_plan:QwenStagesGenerator", description="Where model/moe may be cut into "
        "pipeline stages.", interface="StagesGenerator",
    ),
    ComponentSpec(
        "pipeline", "staged", _PIPE_CFG + "StagedPipelineConfig", _PIPE + "get_staged_pipeline",
        description="This rank's pipeline stages, cut from the whole model by layer count.", interface="Pipeline",
    ),
    ComponentSpec(
        "pipeline", "builder", _PIPE_CFG + "PipelineBuilderConfig", _PIPE + "get_pipeline",
        description="A pipeline of stages and their model parts as wrapped (tensor parallel, FSDP2).",
        interface="Pipeline",
    ),
    ComponentSpec(
        "pipeline", "scheduled", _PIPE_CFG + "ScheduledPipelineConfig", _PIPE + "get_scheduled_pipeline",
        description="A pipeline with its schedule (GPipe, 1F1B, Interleaved1F1B, LoopedBFS) and loss.",
        interface="Pipeline",
    ),
    ComponentSpec(
        "pipeline", "selector", _PIPE_CFG + "PipelineSelectorConfig", _PIPE + "select_from_pipeline",
        produces="pipeline_selection",
        produces_by=("selection_type", {"MODEL_PART": "model", "PP_STAGE": "pipeline_stage",
                                        "PP_SCHEDULE": "pipeline_schedule"}),
        description="One piece of a pipeline: its model parts (a model), its stages or its schedule.",
        interface="list[nn.Module] | list[PipelineStage] | schedule",
    ),
]

# What a whole training config is (validated by the compiler, built and run by `modalities train`).
ROOTS = [
    RootSpec(
        "training",
        "modalities.training.run:TrainingRunConfig",
        contract="modalities.training.contract:check_training_run",
        markers=("app_state", "train_dataloader"),
        weak_markers=("loss_fn", "checkpoint_saving", "gradient_clipper", "progress_subscriber", "evaluation_subscriber",
                      "eval_dataloaders"),
        description="A training run: settings and the components the training loop needs.",
    ),
]
