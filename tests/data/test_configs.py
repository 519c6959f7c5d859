"""The data components built through the compiler from Modalities-style YAML."""

import textwrap

import pytest

from modalities import ConfigError, Main, load_app_config_dict
from modalities.batch import DatasetBatch
from modalities.data.loaders import LLMDataLoader, RepeatingDataLoader
from tests.data.conftest import REPO, TEXTS

SAMPLE = REPO / "data" / "sample"

TRAINING_DATA_SECTION = f"""
settings:
  referencing_keys:
    sample_key: input_ids
    target_key: target_ids
  paths:
    train_dataset_path: {SAMPLE / "corpus.pbin"}
  step_profile:
    gradient_accumulation_steps: 1
    local_train_micro_batch_size: 4
    sequence_length: 64
  cuda_env:
    global_rank: 1
    world_size: 2
  training_target:
    num_target_tokens:
      component_key: number_conversion
      variant_key: num_tokens_from_packed_mem_map_dataset_continuous
      config:
        dataset_path: ${{settings.paths.train_dataset_path}}
        sequence_length: ${{settings.step_profile.sequence_length}}
        num_ranks: ${{settings.cuda_env.world_size}}
        local_micro_batch_size: ${{settings.step_profile.local_train_micro_batch_size}}
        gradient_accumulation_steps: ${{settings.step_profile.gradient_accumulation_steps}}
    num_raw_steps:
      component_key: number_conversion
      variant_key: num_steps_from_raw_dataset_index
      config:
        raw_index_path: {SAMPLE / "corpus.idx"}
        num_ranks: 2
        local_micro_batch_size: 4
        gradient_accumulation_steps: 1
  training_progress:
    num_seen_samples: 0

collate_fn:
  component_key: collate_fn
  variant_key: gpt_2_llm_collator
  config:
    sample_key: ${{settings.referencing_keys.sample_key}}
    target_key: ${{settings.referencing_keys.target_key}}

train_dataset:
  component_key: dataset
  variant_key: packed_mem_map_dataset_continuous
  config:
    raw_data_path: ${{settings.paths.train_dataset_path}}
    sequence_length: ${{settings.step_profile.sequence_length}}
    sample_key: ${{settings.referencing_keys.sample_key}}

train_dataloader:
  component_key: data_loader
  variant_key: default
  config:
    num_workers: 0
    pin_memory: false
    dataloader_tag: train
    dataset:
      instance_key: train_dataset
      pass_type: BY_REFERENCE
    batch_sampler:
      component_key: batch_sampler
      variant_key: default
      config:
        batch_size: ${{settings.step_profile.local_train_micro_batch_size}}
        drop_last: true
        sampler:
          component_key: sampler
          variant_key: resumable_distributed_sampler
          config:
            dataset:
              instance_key: train_dataset
              pass_type: BY_REFERENCE
            rank: ${{settings.cuda_env.global_rank}}
            num_replicas: ${{settings.cuda_env.world_size}}
            shuffle: true
            seed: 42
            drop_last: true
            skip_num_global_samples: ${{settings.training_progress.num_seen_samples}}
    collate_fn:
      instance_key: collate_fn
      pass_type: BY_REFERENCE

test_dataloader:
  component_key: data_loader
  variant_key: repeating_data_loader
  config:
    num_epochs: 2
    reshuffle_after_epoch: true
    dataloader:
      component_key: data_loader
      variant_key: default
      config:
        num_workers: 0
        pin_memory: false
        dataloader_tag: test
        dataset:
          instance_key: train_dataset
          pass_type: BY_REFERENCE
        batch_sampler:
          component_key: batch_sampler
          variant_key: default
          config:
            batch_size: 2
            sampler:
              component_key: sampler
              variant_key: distributed_sampler
              config:
                rank: 0
                num_replicas: 1
                shuffle: false
                dataset:
                  instance_key: train_dataset
                  pass_type: BY_REFERENCE
        collate_fn:
          instance_key: collate_fn
          pass_type: BY_REFERENCE

eval_dataloaders:
  - instance_key: test_dataloader
    pass_type: BY_REFERENCE
"""


def _write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_modalities_style_data_section_builds(tmp_path):
    config = load_app_config_dict(_write(tmp_path, TRAINING_DATA_SECTION))
    components = Main(config).build_components()
    loader = components["train_dataloader"]
    assert isinstance(loader, LLMDataLoader) and loader.dataloader_tag == "train"
    batch = next(iter(loader))
    assert isinstance(batch, DatasetBatch)
    assert batch.samples["input_ids"].shape == (4, 64) and batch.targets["target_ids"].shape == (4, 64)
    assert isinstance(components["test_dataloader"], RepeatingDataLoader)
    dataset = components["train_dataset"]
    assert loader.dataset is dataset, "the reference is one shared object"
    assert len(loader) == len(dataset) // 2 // 4  # rank 1 of 2, micro-batch 4


def test_number_conversions_in_settings(tmp_path):
    components = Main(load_app_config_dict(_write(tmp_path, TRAINING_DATA_SECTION))).build_components()
    target = components["settings"]["training_target"]
    # 77989 tokens -> (77989 - 1) // 64 = 1218 samples -> 1218 // 2 ranks // 4 = 152 steps of 2 * 4 * 64 tokens
    assert target["num_target_tokens"] == 152 * 2 * 4 * 64
    assert target["num_raw_steps"] == 600 // 2 // 4


def test_wrong_kind_and_bad_values_are_config_errors(tmp_path):
    text = TRAINING_DATA_SECTION.replace(
        "    batch_sampler:\n      component_key: batch_sampler",
        "    batch_sampler:\n      component_key: batch_sampler",
        1,
    ).replace("shuffle: true\n            seed: 42", "shuffle: true\n            seed: 42\n            bogus: 1", 1)
    with pytest.raises(ConfigError, match="bogus"):
        Main(load_app_config_dict(_write(tmp_path, text))).build_components()
    text = TRAINING_DATA_SECTION.replace("global_rank: 1", "global_rank: 2")
    with pytest.raises(ConfigError, match="rank \\(2\\) must be below num_replicas \\(2\\)"):
        Main(load_app_config_dict(_write(tmp_path, text))).build_components()


def test_pack_quickstart_config_validates():
    config = load_app_config_dict(REPO / "configs" / "pack_quickstart.yaml")
    from modalities.data.config import PackEncodedDataSettings

    settings = PackEncodedDataSettings.model_validate(config["settings"])
    assert settings.num_cpus >= 1 and settings.eod_token == "<|endoftext|>"
    tokenizer = Main({"tokenizer": config["tokenizer"]}).build_components()["tokenizer"]
    assert tokenizer.vocab_size == 2048


def test_mem_map_dummy_and_sentencepiece_build_through_main(tmp_path, corpus, sp_model):
    from modalities.data.raw_index import create_raw_index

    create_raw_index(corpus)
    text = f"""
    sp_tokenizer:
      component_key: tokenizer
      variant_key: pretrained_sp_tokenizer
      config:
        tokenizer_model_file: {sp_model}
    raw_dataset:
      component_key: dataset
      variant_key: mem_map_dataset
      config:
        raw_data_path: {corpus}
        tokenizer:
          instance_key: sp_tokenizer
          pass_type: BY_REFERENCE
        jq_pattern: .meta.body
        sample_key: input_ids
    dummy:
      component_key: dataset
      variant_key: dummy_dataset
      config:
        num_samples: 3
        seed: 0
        sample_definition:
          - sample_key: images
            sample_shape: [3, 4, 4]
            sample_type: float
    """
    components = Main(load_app_config_dict(_write(tmp_path, text))).build_components()
    tokenizer = components["sp_tokenizer"]
    assert components["raw_dataset"][1]["input_ids"] == tokenizer.tokenize(TEXTS[1].upper())
    assert components["dummy"][2]["images"].shape == (3, 4, 4)
    bad = text.replace("jq_pattern: .meta.body", "jq_pattern: meta.body")
    with pytest.raises(ConfigError, match="must start with '.'"):
        Main(load_app_config_dict(_write(tmp_path, bad))).build_components()
