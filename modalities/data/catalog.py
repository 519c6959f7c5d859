"""Data components: tokenizers, datasets, samplers, collators, data loaders and counts read from data files."""

from modalities.registry.registry import ComponentSpec

_CFG = "modalities.data.config:"


def _row(
    component_key: str,
    variant_key: str,
    config: str,
    builder: str,
    description: str,
    interface: str,
    produces: str = "",
) -> ComponentSpec:
    return ComponentSpec(
        component_key=component_key,
        variant_key=variant_key,
        config=_CFG + config,
        builder=builder,
        produces=produces,
        description=description,
        interface=interface,
    )


CATALOG = [
    _row(
        "tokenizer",
        "pretrained_hf_tokenizer",
        "PreTrainedHFTokenizerConfig",
        "modalities.data.tokenizers:PreTrainedHFTokenizer",
        "A Hugging Face fast tokenizer from a local folder or tokenizer.json.",
        "TokenizerWrapper",
    ),
    _row(
        "tokenizer",
        "pretrained_sp_tokenizer",
        "PreTrainedSPTokenizerConfig",
        "modalities.data.tokenizers:PreTrainedSPTokenizer",
        "A SentencePiece tokenizer from a local .model file.",
        "TokenizerWrapper",
    ),
    _row(
        "dataset",
        "mem_map_dataset",
        "MemMapDatasetConfig",
        "modalities.data.datasets:MemMapDataset",
        "JSONL documents located by a raw index, tokenized on access.",
        "torch.utils.data.Dataset",
    ),
    _row(
        "dataset",
        "packed_mem_map_dataset_continuous",
        "PackedMemMapDatasetContinuousConfig",
        "modalities.data.datasets:PackedMemMapDatasetContinuous",
        "Fixed-length samples cut from a .pbin token stream across document boundaries.",
        "torch.utils.data.Dataset",
    ),
    _row(
        "dataset",
        "packed_mem_map_dataset_megatron",
        "PackedMemMapDatasetMegatronConfig",
        "modalities.data.datasets:PackedMemMapDatasetMegatron",
        "Samples of sequence_length + 1 tokens aligned to document starts where they fit (Megatron-style).",
        "torch.utils.data.Dataset",
    ),
    _row(
        "dataset",
        "combined",
        "CombinedDatasetConfig",
        "modalities.data.datasets:CombinedDataset",
        "Several datasets read one after the other as one.",
        "torch.utils.data.Dataset",
    ),
    _row(
        "dataset",
        "dummy_dataset",
        "DummyDatasetConfig",
        "modalities.data.datasets:DummyDataset",
        "Random samples of given shapes.",
        "torch.utils.data.Dataset",
    ),
    _row(
        "sampler",
        "sequential_sampler",
        "SequentialSamplerConfig",
        "torch.utils.data:SequentialSampler",
        "Every index of the dataset in order.",
        "torch.utils.data.Sampler",
    ),
    _row(
        "sampler",
        "distributed_sampler",
        "DistributedSamplerConfig",
        "modalities.data.samplers:distributed_sampler",
        "This rank's share of the indices, shuffled by seed + epoch (torch DistributedSampler order).",
        "torch.utils.data.Sampler",
    ),
    _row(
        "sampler",
        "resumable_distributed_sampler",
        "ResumableDistributedSamplerConfig",
        "modalities.data.samplers:ResumableDistributedSampler",
        "A distributed sampler that skips the samples consumed before a restart.",
        "torch.utils.data.Sampler",
    ),
    _row(
        "batch_sampler",
        "default",
        "BatchSamplerConfig",
        "modalities.data.samplers:batch_sampler",
        "Groups a sampler's indices into batches.",
        "torch.utils.data.BatchSampler",
    ),
    _row(
        "collate_fn",
        "gpt_2_llm_collator",
        "GPT2LLMCollateFnConfig",
        "modalities.data.collate:GPT2LLMCollateFn",
        "Stacks token samples into inputs tokens[:, :-1] and targets tokens[:, 1:].",
        "CollateFn -> DatasetBatch",
    ),
    _row(
        "data_loader",
        "default",
        "LLMDataLoaderConfig",
        "modalities.data.loaders:LLMDataLoader",
        "A DataLoader with a tag that can report and restore its position.",
        "LLMDataLoader",
    ),
    _row(
        "data_loader",
        "repeating_data_loader",
        "RepeatingDataLoaderConfig",
        "modalities.data.loaders:RepeatingDataLoader",
        "Repeats a data loader for a number of epochs, optionally reshuffling each.",
        "LLMDataLoader",
    ),
    _row(
        "number_conversion",
        "num_tokens_from_packed_mem_map_dataset_continuous",
        "NumTokensFromPackedMemMapDatasetContinuousConfig",
        "modalities.data.number_conversion:num_tokens_from_packed_mem_map_dataset_continuous",
        "Tokens that whole training steps consume from a .pbin file.",
        "int",
        produces="int",
    ),
    _row(
        "number_conversion",
        "num_steps_from_raw_dataset_index",
        "NumStepsFromRawDatasetIndexConfig",
        "modalities.data.number_conversion:num_steps_from_raw_dataset_index",
        "Optimizer steps for one pass over the documents of a raw index.",
        "int",
        produces="int",
    ),
]
