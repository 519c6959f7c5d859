"""The library flow of the seed's library-usage page, with a custom collate function."""

from pathlib import Path

import pytest
from pydantic import BaseModel

from modalities import ConfigError, Main, load_app_config_dict


class CustomGPT2LLMCollateFnConfig(BaseModel):
    sample_key: str
    target_key: str
    custom_attribute: str


class CustomGPT2LLMCollateFn:
    def __init__(self, sample_key: str, target_key: str, custom_attribute: str):
        self.sample_key = sample_key
        self.target_key = target_key
        self.custom_attribute = custom_attribute

    def __call__(self, batch):
        import torch

        from modalities.batch import DatasetBatch

        sample_tensor = torch.stack([torch.tensor(d[self.sample_key]) for d in batch])
        return DatasetBatch(
            samples={self.sample_key: sample_tensor[:, :-1]}, targets={self.target_key: sample_tensor[:, 1:]}
        )


CONFIG = """
settings:
  referencing_keys:
    sample_key: input_ids
    target_key: target_ids
collate_fn:
  component_key: collate_fn
  variant_key: custom_gpt_2_llm_collator
  config:
    sample_key: ${settings.referencing_keys.sample_key}
    target_key: ${settings.referencing_keys.target_key}
    custom_attribute: "custom_value"
"""


def test_seed_library_usage_flow(write_config):
    config_dict = load_app_config_dict(Path(write_config(CONFIG)))
    assert isinstance(config_dict, dict)
    main = Main(config_dict=config_dict)
    main.add_custom_component(
        component_key="collate_fn",
        variant_key="custom_gpt_2_llm_collator",
        custom_component=CustomGPT2LLMCollateFn,
        custom_config=CustomGPT2LLMCollateFnConfig,
    )
    components = main.build_components()
    collate = components["collate_fn"]
    assert isinstance(collate, CustomGPT2LLMCollateFn)
    assert (collate.sample_key, collate.target_key, collate.custom_attribute) == ("input_ids", "target_ids", "custom_value")
    batch = collate([{"input_ids": [1, 2, 3]}, {"input_ids": [4, 5, 6]}])
    assert batch.samples["input_ids"].tolist() == [[1, 2], [4, 5]]
    assert batch.targets["target_ids"].tolist() == [[2, 3], [5, 6]]


def test_custom_component_is_private_to_its_main(write_config):
    config_dict = load_app_config_dict(write_config(CONFIG))
    with pytest.raises(ConfigError) as e:
        Main(config_dict=config_dict).build_components()
    (err,) = e.value.errors
    assert err.code == "unknown-variant" and err.span.line == 8  # collate_fn exists, this variant does not


def test_errors_from_main_carry_positions_and_custom_config_fields_are_checked(write_config):
    path = write_config(CONFIG.replace("custom_attribute", "custom_atribute"))
    main = Main(config_dict=load_app_config_dict(path))
    main.add_custom_component(
        component_key="collate_fn",
        variant_key="custom_gpt_2_llm_collator",
        custom_component=CustomGPT2LLMCollateFn,
        custom_config=CustomGPT2LLMCollateFnConfig,
    )
    with pytest.raises(ConfigError) as e:
        main.validate()
    codes = sorted(d.code for d in e.value.errors)
    assert codes == ["unknown-field"]  # the missing custom_attribute is explained by the typo
    assert f"{path}:12:5" in str(e.value)


def test_load_app_config_dict_reports_interpolation_errors(write_config):
    with pytest.raises(ConfigError, match="does not exist"):
        load_app_config_dict(write_config("a: ${settings.nothing}\nsettings: {}\n"))


def test_main_from_plain_dict_without_positions():
    main = Main(
        config_dict={
            "n": {
                "component_key": "number_conversion",
                "variant_key": "num_samples_from_num_tokens",
                "config": {"num_tokens": 10, "sequence_length": 3},
            }
        }
    )
    assert main.build_components()["n"] == 3
