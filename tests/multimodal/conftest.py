import copy

import pytest
import torch

from modalities.registry import default_registry

VOCAB = 50
TEXT_LEN = 12  # tokens per sample before the collator's shift
IMG = 16


def build(component_key: str, variant_key: str, config: dict):
    """Validate ``config`` with the registered config class and call the builder with its fields."""
    spec = default_registry().get(component_key, variant_key)
    assert spec is not None, f"{component_key}/{variant_key} is not registered"
    validated = spec.config_class().model_validate(config)
    kwargs = {name: getattr(validated, name) for name in type(validated).model_fields}
    return spec.builder_callable()(**kwargs)


@pytest.fixture(autouse=True)
def single_intra_op_thread():
    """These models are tiny: a second intra-op thread only adds contention on the shared 2-core machine
    (a 30-step training loop took 33 s with 2 threads under load, 1.5 s with 1)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_coca_config(**overrides) -> dict:
    """A CoCa config in Modalities' format, shrunk to a few thousand parameters."""
    config = {
        "prediction_key": "logits",
        "vision_embd_prediction_key": "vision_embeddings",
        "text_embd_prediction_key": "text_embeddings",
        "vision_cls_prediction_key": "vision_cls",
        "text_cls_prediction_key": "text_cls",
        "vision_encoder_config": {
            "sample_key": "images",
            "prediction_key": "vision_embeddings",
            "img_size": IMG,
            "n_classes": None,
            "n_layer": 1,
            "attention_config": {"attention_engine_type": "default_attention"},
            "n_head": 2,
            "n_embd": 32,
            "dropout": 0.0,
            "patch_size": 4,
            "patch_stride": 4,
            "n_img_channels": 3,
            "add_cls_token": False,
            "bias": True,
        },
        "text_decoder_config": {
            "sample_key": "input_ids",
            "prediction_key": "logits",
            "block_size": TEXT_LEN,
            "vocab_size": VOCAB,
            "n_layer_text": 1,
            "n_layer_multimodal_text": 1,
            "attention_config": {"attention_engine_type": "default_attention"},
            "n_head": 2,
            "ffn_hidden": 64,
            "n_embd": 32,
            "dropout": 0.0,
            "bias": True,
            "activation": "fused_swiglu",
            "epsilon": 1e-5,
        },
        "n_pool_head": 2,
        "n_vision_queries": 4,
        "bias_attn_pool": False,
        "epsilon_attn_pool": 1e-5,
        "weight_init": {"mean": 0.0, "std": 0.02},
        "seed": 0,
    }
    config = copy.deepcopy(config)
    for dotted, value in overrides.items():
        node = config
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return config


@pytest.fixture
def coca_config() -> dict:
    return tiny_coca_config()


@pytest.fixture
def image_text_pairs() -> list[dict]:
    generator = torch.Generator().manual_seed(1)
    return [
        {
            "images": torch.randn(3, IMG, IMG, generator=generator),
            "input_ids": torch.randint(0, VOCAB, (TEXT_LEN,), generator=generator),
        }
        for _ in range(8)
    ]
