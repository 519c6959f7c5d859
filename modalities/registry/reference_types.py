"""The reference's ``Pydantic...Type`` annotations, for custom components written against it.

A config class that says ``model: PydanticPytorchModuleType`` (imported from
``modalities.config.pydantic_if_types``, as the reference's docs show) gets a field that takes a component of the
matching kind; the kinds are those ``registry/python_types.py`` gives the underlying classes.
"""

from __future__ import annotations

from modalities.registry.types import ComponentRef

PydanticCheckpointSavingIFType = ComponentRef["checkpoint_saving"]
PydanticCheckpointSavingStrategyIFType = ComponentRef["checkpoint_saving_strategy"]
PydanticCheckpointSavingExecutionIFType = ComponentRef["checkpoint_saving_execution"]
PydanticFSDP1CheckpointLoadingIFType = ComponentRef["checkpoint_loading"]
PydanticDistributedCheckpointLoadingIFType = ComponentRef["checkpoint_loading"]
PydanticPytorchModuleType = ComponentRef["model", "layer_norm"]
PydanticPytorchModuleOrListType = PydanticPytorchModuleType | list[PydanticPytorchModuleType]
PydanticFSDP1ModuleType = ComponentRef["model"]
PydanticFSDP2ModuleType = ComponentRef["model"]
PydanticTokenizerIFType = ComponentRef["tokenizer"]
PydanticDatasetIFType = ComponentRef["dataset"]
PydanticSamplerIFType = ComponentRef["sampler", "batch_sampler"]
PydanticCollateFnIFType = ComponentRef["collate_fn"]
PydanticLLMDataLoaderIFType = ComponentRef["data_loader"]
PydanticOptimizerIFType = ComponentRef["optimizer"]
PydanticLRSchedulerIFType = ComponentRef["scheduler"]
PydanticLossIFType = ComponentRef["loss"]
PydanticMessageSubscriberIFType = ComponentRef["progress_subscriber", "results_subscriber"]
PydanticTextInferenceComponentType = ComponentRef["inference_component"]
PydanticGradientClipperIFType = ComponentRef["gradient_clipper"]
PydanticModelInitializationIFType = ComponentRef["model_initialization"]
PydanticDeviceMeshIFType = ComponentRef["device_mesh"]
PydanticAppStateType = ComponentRef["app_state"]
PydanticMFUCalculatorABCType = ComponentRef["mfu_calculator"]
PydanticDatasetBatchGeneratorIFType = ComponentRef["dataset_batch_generator"]
PydanticSteppableComponentIFType = ComponentRef["steppable_component"]
PydanticSteppableProfilerIFType = ComponentRef["steppable_profiler"]
PydanticRemovableHandleType = ComponentRef["model_debugging_hook"]
PydanticDebuggingType = ComponentRef["debugging"]
PydanticStagesGeneratorType = ComponentRef["stages_generator"]
PydanticPipelineType = ComponentRef["pipeline"]
PydanticPipelineStageType = ComponentRef["pipeline"]

__all__ = [name for name in dir() if name.startswith("Pydantic")]
