"""Configs of the data components (torch-free: `modalities validate` imports this module).

Field names follow Modalities' configs, so its data, sampler and loader sections load unchanged.

Each config class is defined in a module of its own under ``configs/`` and imported from there when first asked for:
``modalities.data.config.X`` works for every class in CONFIG_CLASSES, and `modalities validate` defines only the
classes a config names (see registry/lazy.py). This module holds what they share.
"""

from typing import Annotated

from modalities.registry.lazy import lazy_attributes
from modalities.registry.types import Field

SequenceLength = Annotated[int, Field(strict=True, gt=1)]

SAMPLE_KEY_DOC = "Key under which a sample's token ids are stored (e.g. `input_ids`); the collator reads it."
DATASET_DOC = "The dataset to draw sample indices for."


def check_jq_pattern(pattern: str) -> str:
    from modalities.data.jq_pattern import JqPatternError, compile_jq_pattern

    try:
        compile_jq_pattern(pattern)
    except JqPatternError as e:
        raise ValueError(str(e)) from None
    return pattern


# class name -> the module that defines it
CONFIG_CLASSES = {
    "PreTrainedHFTokenizerConfig": "modalities.data.configs.hf_tokenizer",
    "PreTrainedSPTokenizerConfig": "modalities.data.configs.sp_tokenizer",
    "MemMapDatasetConfig": "modalities.data.configs.mem_map_dataset",
    "PackedMemMapDatasetContinuousConfig": "modalities.data.configs.packed_continuous_dataset",
    "PackedMemMapDatasetMegatronConfig": "modalities.data.configs.packed_megatron_dataset",
    "CombinedDatasetConfig": "modalities.data.configs.combined_dataset",
    "DummySampleConfig": "modalities.data.configs.dummy_dataset",
    "DummyDatasetConfig": "modalities.data.configs.dummy_dataset",
    "SequentialSamplerConfig": "modalities.data.configs.sequential_sampler",
    "DistributedSamplerConfig": "modalities.data.configs.distributed_sampler",
    "ResumableDistributedSamplerConfig": "modalities.data.configs.resumable_distributed_sampler",
    "ResumableDistributedMultiDimSamplerConfig": "modalities.data.configs.resumable_distributed_multi_dim_sampler",
    "BatchSamplerConfig": "modalities.data.configs.batch_sampler",
    "GPT2LLMCollateFnConfig": "modalities.data.configs.gpt2_collate_fn",
    "LossMaskingTokenConfig": "modalities.data.configs.loss_masking_collate_fn",
    "LossMaskingCollateFnWrapperConfig": "modalities.data.configs.loss_masking_collate_fn",
    "LLMDataLoaderConfig": "modalities.data.configs.llm_data_loader",
    "RepeatingDataLoaderConfig": "modalities.data.configs.repeating_data_loader",
    "NumTokensFromPackedMemMapDatasetContinuousConfig": "modalities.data.configs.num_tokens_from_packed_continuous",
    "NumStepsFromRawDatasetIndexConfig": "modalities.data.configs.num_steps_from_raw_dataset_index",
    "PackEncodedDataSettings": "modalities.data.configs.pack_encoded_data",
}
__getattr__, __dir__ = lazy_attributes(__name__, CONFIG_CLASSES)
