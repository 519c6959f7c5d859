import re

import pytest
import torch
from pydantic import ValidationError

from modalities.batch import InferenceResultBatch
from modalities.models.coca.config import AttentionEngineType, CoCaConfig
from modalities.models.coca.model import AttentionPooling, CoCa
from tests.multimodal.conftest import IMG, TEXT_LEN, VOCAB, build, tiny_coca_config


def _inputs(batch: int = 3, t: int = TEXT_LEN, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "images": torch.randn(batch, 3, IMG, IMG, generator=generator),
        "input_ids": torch.randint(0, VOCAB, (batch, t), generator=generator),
    }


def test_modalities_coca_config_validates_and_builds(coca_config):
    model = build("model", "coca", coca_config)
    assert isinstance(model, CoCa)
    # Weight tying: one tensor for the input embedding and the LM head.
    assert model.multimodal_decoder.lm_head.weight is model.text_decoder.transformer.wte.weight


def test_forward_shapes(coca_config):
    model = build("model", "coca", coca_config).eval()
    out = model(_inputs(batch=3, t=7))
    assert out["logits"].shape == (3, 7, VOCAB)
    assert out["vision_cls"].shape == (3, 1, 32)  # (B, 1, d) as in the reference
    assert out["text_cls"].shape == (3, 1, 32)
    assert out["text_embeddings"].shape == (3, 7, 32)
    assert out["vision_embeddings"].shape == (3, (IMG // 4) ** 2, 32)


def test_different_vision_and_text_widths_are_projected():
    config = tiny_coca_config(**{"vision_encoder_config.n_embd": 16, "text_decoder_config.n_embd": 24})
    model = build("model", "coca", config).eval()
    out = model(_inputs())
    assert out["vision_cls"].shape == (3, 1, 24) and out["text_cls"].shape == (3, 1, 24)


def test_attention_pooling_output_shapes():
    pool = AttentionPooling(n_embd=32, n_head=4, bias=True, epsilon=1e-5, engine=AttentionEngineType.DEFAULT_ATTENTION)
    queries, context = torch.randn(2, 5, 32), torch.randn(2, 9, 32)
    assert pool(queries, context).shape == (2, 5, 32)
    model = build("model", "coca", tiny_coca_config(n_vision_queries=6)).eval()
    tokens, pooled, embedding = model.encode_image(_inputs()["images"])
    assert tokens.shape == (3, 16, 32)
    assert pooled.shape == (3, 6, 32) and embedding.shape == (3, 1, 32)


def test_text_decoders_are_causal(coca_config):
    model = build("model", "coca", coca_config).eval()
    inputs = _inputs(batch=2)
    changed = {k: v.clone() for k, v in inputs.items()}
    t = 5
    changed["input_ids"][:, t] = (changed["input_ids"][:, t] + 1) % VOCAB
    with torch.no_grad():
        before, after = model(inputs), model(changed)
    for key in ("logits", "text_embeddings"):
        torch.testing.assert_close(before[key][:, :t], after[key][:, :t], rtol=0, atol=1e-6)
        assert not torch.allclose(before[key][:, t:], after[key][:, t:])
    # The text embedding (cls token after the last token) sees every token; the image embedding sees none.
    assert not torch.allclose(before["text_cls"], after["text_cls"])
    torch.testing.assert_close(before["vision_cls"], after["vision_cls"], rtol=0, atol=0)


def test_logits_depend_on_the_image(coca_config):
    model = build("model", "coca", coca_config).eval()
    inputs = _inputs(batch=2)
    other = dict(inputs, images=torch.randn_like(inputs["images"]))
    with torch.no_grad():
        assert not torch.allclose(model(inputs)["logits"], model(other)["logits"])


def test_attention_engines_agree(coca_config):
    default = build("model", "coca", coca_config).eval()
    flash_config = tiny_coca_config(
        **{
            "vision_encoder_config.attention_config": {"attention_engine_type": "pytorch_flash_attention"},
            "text_decoder_config.attention_config": {"attention_engine_type": "pytorch_flash_attention"},
        }
    )
    flash = build("model", "coca", flash_config).eval()
    flash.load_state_dict(default.state_dict())
    inputs = _inputs()
    with torch.no_grad():
        for key, value in default(inputs).items():
            torch.testing.assert_close(flash(inputs)[key], value, rtol=1e-5, atol=1e-5)


def test_weight_decay_groups_cover_every_parameter_once(coca_config):
    model = build("model", "coca", tiny_coca_config(logit_scale_prediction_key="logit_scale"))
    for name, _ in model.named_parameters():
        groups = [g for g, patterns in model.weight_decay_groups.items() if any(re.search(p, name) for p in patterns)]
        assert len(groups) == 1, f"{name} is in groups {groups}"


@pytest.mark.parametrize(
    "override, message",
    [
        ({"vision_encoder_config.n_classes": 10}, "n_classes must be null"),
        ({"vision_embd_prediction_key": "other"}, "must equal"),
        ({"text_decoder_config.n_head": 3}, "divisible"),
        ({"text_decoder_config.activation": "relu"}, "activation"),
        ({"n_vision_queries": 0}, "n_vision_queries"),
    ],
)
def test_bad_config_is_rejected_with_a_message(override, message):
    with pytest.raises(ValidationError, match=message):
        CoCaConfig.model_validate(tiny_coca_config(**override))


def test_wrong_image_size_and_long_text_are_clear_errors(coca_config):
    model = build("model", "coca", coca_config)
    with pytest.raises(ValueError, match="img_size"):
        model({"images": torch.randn(1, 3, IMG * 2, IMG * 2), "input_ids": torch.zeros(1, 4, dtype=torch.long)})
    with pytest.raises(ValueError, match="block_size"):
        model(_inputs(batch=1, t=TEXT_LEN + 1))
    with pytest.raises(KeyError, match="images"):
        model({"input_ids": torch.zeros(1, 4, dtype=torch.long)})


def test_tiny_coca_learns_random_pairs(image_text_pairs):
    """Collator + model + loss together: the loss falls clearly on a fixed set of random pairs."""
    config = tiny_coca_config(logit_scale_prediction_key="logit_scale")
    model = build("model", "coca", config)
    collate = build(
        "collate_fn",
        "coca_collator",
        {"sample_keys": ["images", "input_ids"], "target_keys": [], "text_sample_key": "input_ids",
         "text_target_key": "target_ids"},
    )
    loss_fn = build(
        "loss",
        "coca_loss",
        {"target_key": "target_ids", "vision_cls_prediction_key": "vision_cls",
         "text_cls_prediction_key": "text_cls", "logit_scale_key": "logit_scale"},
    )
    batch = collate(image_text_pairs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses, parts = [], []
    for _ in range(30):
        loss = loss_fn(InferenceResultBatch(targets=batch.targets, predictions=model(batch.samples)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        parts.append({name: value.item() for name, value in loss_fn.last_losses.items()})
    assert losses[-1] < 0.5 * losses[0], losses
    assert parts[-1]["contrastive"] < 0.5 * parts[0]["contrastive"], parts
    assert parts[-1]["captioning"] < 0.75 * parts[0]["captioning"], parts


def test_block_classes_named_in_modalities_fsdp_configs_exist(coca_config):
    # Modalities' CoCa configs wrap `block_names: [TransformerBlock, VisionTransformerBlock]` with FSDP.
    names = {type(m).__name__ for m in build("model", "coca", coca_config).modules()}
    assert {"TransformerBlock", "VisionTransformerBlock"} <= names


@pytest.mark.parametrize("add_cls_token", [True, False])
def test_vision_transformer_classifier(add_cls_token):
    vit = build(
        "model",
        "vision_transformer",
        {"sample_key": "images", "prediction_key": "logits", "img_size": [16, 12], "n_classes": 10, "n_layer": 1,
         "n_head": 2, "n_embd": 16, "patch_size": 4, "patch_stride": 4, "add_cls_token": add_cls_token},
    )
    images = torch.randn(2, 3, 16, 12)
    assert vit.n_tokens == 4 * 3 + int(add_cls_token)
    assert vit({"images": images})["logits"].shape == (2, 10)
    # No token mixing across the batch: each image's logits depend on that image only.
    changed = images.clone()
    changed[1] += 1
    out, out_changed = vit({"images": images})["logits"], vit({"images": changed})["logits"]
    torch.testing.assert_close(out[0], out_changed[0])
    assert not torch.allclose(out[1], out_changed[1])
