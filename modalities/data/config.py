"""Configs of the data components (torch-free: `modalities validate` imports this module).

Field names follow Modalities' configs, so its data, sampler and loader sections load unchanged.
"""

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import FilePath, StrictBool, field_validator, model_validator

from modalities.conversion.config import dp_degree_field, num_ranks_field
from modalities.registry.types import (
    ComponentConfig,
    ComponentRef,
    Field,
    NonNegativeStrictInt,
    PositiveStrictInt,
    StrictInt,
    warn_config,
)

SequenceLength = Annotated[int, Field(strict=True, gt=1)]

_SAMPLE_KEY = "Key under which a sample's token ids are stored (e.g. `input_ids`); the collator reads it."
_DATASET = "The dataset to draw sample indices for."


def _check_jq_pattern(pattern: str) -> str:
    from modalities.data.jq_pattern import JqPatternError, compile_jq_pattern

    try:
        compile_jq_pattern(pattern)
    except JqPatternError as e:
        raise ValueError(str(e)) from None
    return pattern


# --- tokenizers ---------------------------------------------------------------------------------------------


class PreTrainedHFTokenizerConfig(ComponentConfig):
    """A Hugging Face fast tokenizer from a local folder, a tokenizer.json, or a cached hub id (never downloaded)."""

    pretrained_model_name_or_path: str = Field(
        description="Local folder saved with `save_pretrained` (holding tokenizer.json), a tokenizer.json file, or "
        "a hub id (`gpt2`, `org/name`) in the local Hugging Face cache."
    )
    max_length: NonNegativeStrictInt | None = Field(
        default=None, description="Length to truncate to (with `truncation`) or pad to (with `padding: max_length`)."
    )
    truncation: StrictBool = Field(default=False, description="Cut encodings longer than `max_length`.")
    padding: StrictBool | Literal["longest", "max_length", "do_not_pad"] = Field(
        default=False, description="Padding strategy of transformers: false, true/`longest`, or `max_length`."
    )
    special_tokens: dict[str, str | list[str]] | None = Field(
        default=None,
        description="Special tokens to mark, e.g. `{pad_token: <|endoftext|>}`; they must already be in the vocabulary.",
    )


class PreTrainedSPTokenizerConfig(ComponentConfig):
    """A SentencePiece tokenizer from a local .model file."""

    tokenizer_model_file: str = Field(description="Path of the SentencePiece .model file.")
    padding: StrictBool | str | None = Field(
        default=None,
        description="Accepted as the reference's configs write it, which ignores it: SentencePiece encodes each "
        "text whole, unpadded.",
    )
    truncation: StrictBool | None = Field(
        default=None, description="Accepted as the reference's configs write it, which ignores it: nothing is cut."
    )

    @model_validator(mode="after")
    def _note_ignored_fields(self):
        if self.padding or self.truncation:
            warn_config("padding and truncation have no effect on a SentencePiece tokenizer (as in the reference)")
        return self


# --- datasets -----------------------------------------------------------------------------------------------


class MemMapDatasetConfig(ComponentConfig):
    """Documents of a JSONL file (located through its raw index), tokenized when accessed."""

    raw_data_path: FilePath = Field(description="The JSONL file.")
    index_path: FilePath | None = Field(
        default=None, description="Its raw index (.idx); defaults to the JSONL path with the suffix .idx."
    )
    tokenizer: ComponentRef["tokenizer"] = Field(description="Tokenizer applied to each document on access.")
    jq_pattern: str = Field(default=".text", description="Where the text is in each JSON line, e.g. `.text`.")
    sample_key: str = Field(description=_SAMPLE_KEY)

    @field_validator("jq_pattern")
    @classmethod
    def _check_pattern(cls, pattern: str) -> str:
        return _check_jq_pattern(pattern)


class PackedMemMapDatasetContinuousConfig(ComponentConfig):
    """Fixed-length samples cut from the token stream of a .pbin file, across document boundaries."""

    raw_data_path: Path = Field(description="The packed .pbin file (from `modalities data pack_encoded_data`).")
    sequence_length: SequenceLength = Field(
        description="Model input length; each sample holds sequence_length + 1 tokens (inputs and shifted targets), "
        "or sequence_length tokens with reuse_last_target false."
    )
    sample_key: str = Field(description=_SAMPLE_KEY)
    reuse_last_target: StrictBool = Field(
        default=True,
        description="Consecutive samples share one token (the last target is the next first input); false gives "
        "disjoint blocks of sequence_length tokens (for instruction tuning).",
    )


class PackedMemMapDatasetMegatronConfig(ComponentConfig):
    """Samples of sequence_length + 1 tokens aligned to document starts where they fit (Megatron-style)."""

    raw_data_path: Path = Field(description="The packed .pbin file (its document index is used).")
    sequence_length: SequenceLength = Field(description="Model input length; samples hold sequence_length + 1 tokens.")
    sample_key: str = Field(description=_SAMPLE_KEY)


class CombinedDatasetConfig(ComponentConfig):
    """Several datasets read one after the other as one dataset."""

    datasets: list[ComponentRef["dataset"]] = Field(  # noqa: F821
        min_length=1, description="The datasets, in order; their samples must have the same keys."
    )


class DummySampleConfig(ComponentConfig):
    """One entry of a dummy sample: a random array of a given shape and type."""

    sample_key: str = Field(description="Key of the array in the sample.")
    sample_shape: tuple[StrictInt, ...] = Field(description="Shape of the array.")
    sample_type: Literal["float", "int"] = Field(description="`float` (standard normal) or `int` (0..511).")


class DummyDatasetConfig(ComponentConfig):
    """Random samples of given shapes, for tests and throughput measurements."""

    num_samples: PositiveStrictInt = Field(description="Number of samples in the dataset.")
    sample_definition: list[DummySampleConfig] = Field(description="The arrays each sample holds.")
    seed: StrictInt | None = Field(
        default=None, description="With a seed, sample i is the same on every access; without, it is fresh each time."
    )


# --- sampling -----------------------------------------------------------------------------------------------


class _RankedSamplerConfig(ComponentConfig):
    @model_validator(mode="after")
    def _rank_below_replicas(self):
        if isinstance(self.rank, int) and isinstance(self.num_replicas, int) and self.rank >= self.num_replicas:
            raise ValueError(f"rank ({self.rank}) must be below num_replicas ({self.num_replicas})")
        return self


class SequentialSamplerConfig(ComponentConfig):
    """Every index of a dataset in order (one process; torch's SequentialSampler)."""

    data_source: ComponentRef["dataset"] = Field(description=_DATASET)


class DistributedSamplerConfig(_RankedSamplerConfig):
    """Each rank draws its share of the dataset's indices; shuffling is seeded by seed + epoch."""

    rank: NonNegativeStrictInt = Field(description="Data-parallel rank of this process.")
    num_replicas: PositiveStrictInt = Field(description="Number of data-parallel ranks.")
    shuffle: StrictBool = Field(description="Permute the indices (the same permutation on every rank).")
    dataset: ComponentRef["dataset"] = Field(description=_DATASET)
    seed: StrictInt = Field(default=0, description="Seed of the permutation; epoch e uses seed + e.")
    drop_last: StrictBool = Field(
        default=True, description="Drop the tail that does not divide evenly; false pads by repeating indices."
    )


class ResumableDistributedSamplerConfig(_RankedSamplerConfig):
    """A distributed sampler that starts after a number of samples already consumed globally."""

    dataset: ComponentRef["dataset"] = Field(description=_DATASET)
    rank: NonNegativeStrictInt = Field(description="Data-parallel rank of this process.")
    num_replicas: PositiveStrictInt = Field(description="Number of data-parallel ranks.")
    epoch: NonNegativeStrictInt = Field(default=0, description="Epoch to start in (selects the permutation).")
    shuffle: StrictBool = Field(default=False, description="Permute the indices (the same on every rank).")
    seed: StrictInt = Field(default=0, description="Seed of the permutation; epoch e uses seed + e.")
    drop_last: StrictBool = Field(
        default=True, description="Drop the tail that does not divide evenly; false pads by repeating indices."
    )
    skip_num_global_samples: NonNegativeStrictInt = Field(
        default=0,
        description="Samples of the starting epoch already consumed by all ranks together (when resuming).",
    )


class ResumableDistributedMultiDimSamplerConfig(ComponentConfig):
    """The resumable distributed sampler with its rank and replicas read from the device mesh: ranks that share
    a data-parallel coordinate (tensor-parallel peers) draw the same samples."""

    dataset: ComponentRef["dataset"] = Field(description=_DATASET)
    device_mesh: ComponentRef["device_mesh"] = Field(description="The mesh whose data-parallel dimension is read.")
    data_parallel_key: Literal["dp_shard", "dp"] = Field(
        default="dp_shard",
        description="The data-parallel dimension of the mesh: `dp_shard` (the reference's field), or `dp` for "
        "dp_replicate x dp_shard together (torchtitan's name), which a mesh with dp_replicate > 1 needs: with "
        "`dp_shard` the replicas would read the same samples.",
    )
    epoch: NonNegativeStrictInt = Field(default=0, description="Epoch to start in (selects the permutation).")
    shuffle: StrictBool = Field(default=False, description="Permute the indices (the same on every rank).")
    seed: StrictInt = Field(default=0, description="Seed of the permutation; epoch e uses seed + e.")
    drop_last: Literal[True] = Field(default=True, description="Always true, as in the reference.")
    skip_num_global_samples: NonNegativeStrictInt = Field(
        default=0,
        description="Samples of the starting epoch already consumed by all ranks together (when resuming).",
    )


class BatchSamplerConfig(ComponentConfig):
    """Groups a sampler's indices into batches."""

    sampler: ComponentRef["sampler"] = Field(description="The sampler whose indices are grouped.")
    batch_size: PositiveStrictInt = Field(description="Samples per batch on this rank (the micro-batch size).")
    drop_last: StrictBool = Field(default=True, description="Drop a last batch smaller than batch_size.")


class GPT2LLMCollateFnConfig(ComponentConfig):
    """Stacks token samples; inputs are tokens[:, :-1] and targets tokens[:, 1:]."""

    sample_key: str = Field(description="Key of the token ids in each sample, and of the inputs in the batch.")
    target_key: str = Field(description="Key of the targets in the batch (e.g. `target_ids`).")


class LossMaskingTokenConfig(ComponentConfig):
    """The markers around the tokens trained on (e.g. the assistant's turns)."""

    b_include_to_loss_token: str = Field(description="Token after which the loss starts (not itself trained on).")
    e_include_to_loss_token: str = Field(description="Token at which the loss stops (not itself trained on).")


class LossMaskingCollateFnWrapperConfig(ComponentConfig):
    """Wraps a collator and sets every target outside begin..end marker pairs to loss_ignore_index."""

    wrapped_collate_fn: ComponentRef["collate_fn"] = Field(description="The collator that builds the batch.")
    target_keys_to_mask: list[str] = Field(min_length=1, description="Target keys to mask (e.g. `[target_ids]`).")
    loss_ignore_index: StrictInt = Field(description="Value the loss ignores (the loss's ignore_index, usually -100).")
    mask_tokens: LossMaskingTokenConfig = Field(description="The begin and end markers.")
    tokenizer: ComponentRef["tokenizer"] = Field(description="Tokenizer that turns the markers into token ids.")


# --- data loaders -------------------------------------------------------------------------------------------


class LLMDataLoaderConfig(ComponentConfig):
    """A torch DataLoader that knows its tag and can report and restore its position."""

    dataloader_tag: str = Field(description="Name of the loader in logs and results, e.g. `train` or `test`.")
    dataset: ComponentRef["dataset"] = Field(description="The dataset to load from.")
    batch_sampler: ComponentRef["batch_sampler"] = Field(description="Yields the index batches.")
    collate_fn: ComponentRef["collate_fn"] | None = Field(
        default=None, description="Turns a list of samples into a batch; torch's default collation when absent."
    )
    num_workers: NonNegativeStrictInt = Field(description="Loader worker processes (0 loads in the main process).")
    pin_memory: StrictBool = Field(description="Pin batches in page-locked memory for faster host-to-GPU copies.")
    skip_num_batches: NonNegativeStrictInt = Field(
        default=0, description="Batches of the first epoch to skip without loading them (when resuming)."
    )
    fixed_num_batches: PositiveStrictInt | None = Field(
        default=None, description="Cut each epoch to this many batches (counting skipped ones)."
    )

    @model_validator(mode="after")
    def _fixed_after_skip(self):
        if self.fixed_num_batches is not None and self.fixed_num_batches <= self.skip_num_batches:
            raise ValueError(
                f"fixed_num_batches ({self.fixed_num_batches}) must be larger than skip_num_batches "
                f"({self.skip_num_batches})"
            )
        return self


class RepeatingDataLoaderConfig(ComponentConfig):
    """Runs a data loader for several epochs in a row."""

    dataloader: ComponentRef["data_loader"] = Field(description="The loader to repeat.")  # noqa: F821
    num_epochs: PositiveStrictInt = Field(description="Number of passes over the loader.")
    reshuffle_after_epoch: StrictBool = Field(
        default=False, description="Give each pass a new permutation (sampler epoch = pass number)."
    )


# --- number conversions that read data files ----------------------------------------------------------------


class NumTokensFromPackedMemMapDatasetContinuousConfig(ComponentConfig):
    """Tokens training really consumes from a .pbin: whole steps of all ranks, micro-batches and accumulation."""

    dataset_path: Path = Field(description="The packed .pbin file.")
    sequence_length: SequenceLength = Field(description="Model input length (tokens per sample).")
    dp_degree: int = dp_degree_field()
    local_micro_batch_size: PositiveStrictInt = Field(description="Samples per rank per forward/backward pass.")
    gradient_accumulation_steps: PositiveStrictInt = Field(description="Micro-batches per optimizer step.")
    sample_key: str = Field(default="text", description="Accepted as in the reference; counting does not use it.")
    reuse_last_target: StrictBool = Field(
        default=True, description="As in the dataset: whether consecutive samples share one token."
    )


class NumStepsFromRawDatasetIndexConfig(ComponentConfig):
    """Optimizer steps for one pass over the documents of a raw index (one document per sample)."""

    raw_index_path: Path = Field(description="The raw index (.idx) of the JSONL file.")
    num_ranks: int = num_ranks_field()
    local_micro_batch_size: PositiveStrictInt = Field(description="Samples per rank per forward/backward pass.")
    gradient_accumulation_steps: PositiveStrictInt = Field(description="Micro-batches per optimizer step.")


# --- `modalities data pack_encoded_data` --------------------------------------------------------------------


class PackEncodedDataSettings(ComponentConfig):
    """The `settings` block of a pack config (the tokenizer is the top-level `tokenizer` component). Other keys
    are variables for ${settings...} interpolation (e.g. `sequence_length`); `modalities data pack_encoded_data`
    reports one that looks like a misspelled field."""

    model_config = {**ComponentConfig.model_config, "extra": "allow"}


    src_path: FilePath = Field(description="The JSONL corpus.")
    dst_path: Path | None = Field(default=None, description="Output .pbin; defaults to src_path with suffix .pbin.")
    index_path: Path | None = Field(
        default=None, description="Raw index of src_path; defaults to src_path with suffix .idx."
    )
    jq_pattern: str = Field(default=".text", description="Where the text is in each JSON line, e.g. `.text`.")
    num_cpus: PositiveStrictInt = Field(
        default_factory=lambda: os.cpu_count() or 1,
        description="CPUs to tokenize on: threads encoding batches side by side for a Hugging Face fast tokenizer "
        "(one process), worker processes for any other tokenizer.",
    )
    eod_token: str = Field(description="Token appended after every document, e.g. `<|endoftext|>`.")
    processing_batch_size: PositiveStrictInt = Field(
        default=1000, description="Documents encoded in one batch (one call of the tokenizer)."
    )
    raw_samples_queue_size: PositiveStrictInt = Field(
        default=4, description="Batches queued for the workers beyond one per worker (bounds memory)."
    )
    processed_samples_queue_size: PositiveStrictInt = Field(
        default=4, description="Encoded batches that may wait to be written (bounds memory)."
    )
    skip_bad_documents: StrictBool = Field(
        default=False,
        description="Leave out documents that cannot be read or encoded (counted and reported) instead of stopping.",
    )
    special_tokens_in_text: Literal["as_tokens", "as_text"] = Field(
        default="as_tokens",
        description="A special token's string inside a document's text (e.g. a literal `<|endoftext|>` in web "
        "text): `as_tokens` encodes it as the token, as the reference does (an EOD inside a document); `as_text` "
        "encodes its characters, so each document ends with exactly one EOD and holds no other. Documents with "
        "an EOD inside are counted and reported either way. Keep `as_tokens` for text whose markers are meant "
        "(chat templates).",
    )
    tokenizer_engine: Literal["auto", "tiktoken", "huggingface"] = Field(
        default="auto",
        description="What encodes a Hugging Face byte-level BPE tokenizer (GPT-2, Llama-3, Qwen): `auto` uses "
        "tiktoken (the `tiktoken` extra) where it can express the tokenizer and gives its ids on a sample of the "
        "corpus and on built test documents, else Hugging Face tokenizers; `tiktoken` makes it an error when "
        "tiktoken cannot be used; `huggingface` never uses tiktoken. The ids, and so the file, are the same "
        "either way. SentencePiece and tokenizers of one's own keep their engine. Also --tokenizer-engine.",
    )
    overwrite: StrictBool = Field(default=False, description="Replace an existing output file.")

    @field_validator("jq_pattern")
    @classmethod
    def _check_pattern(cls, pattern: str) -> str:
        return _check_jq_pattern(pattern)
