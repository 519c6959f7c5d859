import logging
import math
import os

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from modalities.models.lora.config import LoRAConfig
from modalities.models.lora.lora import (
    LoRALinear,
    lora_layers,
    lora_state_dict,
    load_lora_adapters,
    merge_lora,
    save_lora_adapters,
)
from modalities.models.model import NNModel
from tests.multimodal.conftest import build


class Attention(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x):
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(x.shape[-1])
        mask = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool).tril()
        return self.o_proj(scores.masked_fill(~mask, float("-inf")).softmax(-1) @ v)


class Block(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.norm_1, self.norm_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = Attention(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        x = x + self.attn(self.norm_1(x))
        return x + self.mlp(self.norm_2(x))


class TinyTransformer(NNModel):
    def __init__(self, vocab: int = 40, d: int = 16, n_layer: int = 2, seed: int = 0):
        super().__init__(seed=seed)
        self.wte = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(Block(d) for _ in range(n_layer))
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, inputs):
        x = self.wte(inputs["input_ids"])
        for block in self.blocks:
            x = block(x)
        return {"logits": self.lm_head(x)}


def _tokens(seed: int = 0) -> dict[str, torch.Tensor]:
    return {"input_ids": torch.randint(0, 40, (3, 7), generator=torch.Generator().manual_seed(seed))}


def _perturb_adapters(model: nn.Module, seed: int = 3) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora_layers(model).values():
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=generator) * 0.1)


LORA_CONFIG = {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj", "mlp.*"]}


def test_wrapping_selects_by_name_freezes_base_and_starts_equal(caplog):
    base = TinyTransformer().eval()
    reference = base({"input_ids": _tokens()["input_ids"]})["logits"]
    with caplog.at_level(logging.INFO, logger="modalities.models.lora.lora"):
        model = build("model", "lora", dict(LORA_CONFIG, model=base)).eval()
    assert model is base
    assert sorted(lora_layers(model)) == sorted(
        f"blocks.{i}.{name}" for i in range(2) for name in ("attn.q_proj", "attn.v_proj", "mlp.0", "mlp.2")
    )
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(name.endswith(("lora_A", "lora_B")) for name in trainable)
    d = 16
    expected = 2 * (2 * 4 * (d + d) + 4 * (d + 4 * d) + 4 * (4 * d + d))
    assert model.lora_trainable_parameters == expected
    assert model.lora_total_parameters == sum(p.numel() for p in model.parameters())
    assert f"{expected} trainable" in caplog.text
    # Base parameter names are unchanged, so base checkpoints still load into a wrapped model.
    assert "blocks.0.attn.q_proj.weight" in dict(model.named_parameters())
    torch.testing.assert_close(model(_tokens())["logits"], reference, rtol=0, atol=0)


def test_select_by_class_name_and_modalities_field_names():
    model = build(
        "model", "lora", {"rank": 2, "lora_alpha": 2, "target_layers": ["Attention"], "model": TinyTransformer()}
    )
    assert sorted(lora_layers(model)) == sorted(
        f"blocks.{i}.attn.{p}_proj" for i in range(2) for p in ("q", "k", "v", "o")
    )
    model = build("model", "lora", {"r": 2, "alpha": 1, "target_layer_class_names": ["Block"],
                                    "model": TinyTransformer()})
    assert len(lora_layers(model)) == 12  # 4 attention + 2 MLP Linear layers per block


def test_only_adapters_change_in_training():
    model = build("model", "lora", dict(LORA_CONFIG, model=TinyTransformer()))
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    inputs = _tokens()
    losses = []
    for _ in range(8):
        logits = model(inputs)["logits"]
        loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 40), inputs["input_ids"][:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    for name, param in model.named_parameters():
        if name in frozen_before:
            assert torch.equal(param, frozen_before[name]), name
    assert any(layer.lora_B.abs().sum() > 0 for layer in lora_layers(model).values())


def test_merge_keeps_outputs():
    model = build("model", "lora", dict(LORA_CONFIG, model=TinyTransformer())).eval()
    _perturb_adapters(model)
    adapted = model(_tokens())["logits"]
    base_only = TinyTransformer().eval()(_tokens())["logits"]
    assert not torch.allclose(adapted, base_only, atol=1e-3)  # the adapters do change the function
    merge_lora(model)
    assert not lora_layers(model)
    assert type(model.blocks[0].attn.q_proj) is nn.Linear
    assert model.lora_trainable_parameters == 0
    torch.testing.assert_close(model(_tokens())["logits"], adapted, rtol=0, atol=1e-5)


def test_adapters_save_and_load_on_their_own(tmp_path):
    model = build("model", "lora", dict(LORA_CONFIG, model=TinyTransformer())).eval()
    _perturb_adapters(model)
    expected = model(_tokens())["logits"]
    path = save_lora_adapters(model, tmp_path / "adapters" / "lora.pt")
    assert sorted(os.listdir(path.parent)) == ["lora.pt"]  # no temporary file left behind
    saved = torch.load(path, weights_only=True)["state_dict"]
    assert set(saved) == set(lora_state_dict(model))
    assert all(k.endswith(("lora_A", "lora_B")) for k in saved)

    fresh = build("model", "lora", dict(LORA_CONFIG, model=TinyTransformer(), adapter_path=str(path))).eval()
    torch.testing.assert_close(fresh(_tokens())["logits"], expected, rtol=0, atol=0)


def test_loading_mismatched_adapters_is_a_clear_error(tmp_path):
    model = build("model", "lora", dict(LORA_CONFIG, model=TinyTransformer()))
    path = save_lora_adapters(model, tmp_path / "lora.pt")
    other_targets = build(
        "model", "lora", {"r": 4, "alpha": 8, "target_modules": ["q_proj"], "model": TinyTransformer()}
    )
    with pytest.raises(ValueError, match="do not fit this model"):
        load_lora_adapters(other_targets, path)
    other_rank = build("model", "lora", dict(LORA_CONFIG, r=2, model=TinyTransformer()))
    with pytest.raises(ValueError, match="r=4"):
        load_lora_adapters(other_rank, path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_lora_adapters(model, tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_lora_adapters(model, tmp_path / "missing.pt")


def test_config_errors():
    with pytest.raises(ValidationError, match="name the layers to adapt"):
        LoRAConfig.model_validate({"r": 4, "alpha": 1, "model": TinyTransformer()})
    with pytest.raises(ValidationError, match=r"r\n  Input should be greater than 0"):
        LoRAConfig.model_validate({"r": 0, "alpha": 1, "target_modules": ["q_proj"], "model": TinyTransformer()})
    with pytest.raises(ValueError, match="no Linear layer matches"):
        build("model", "lora", {"r": 4, "alpha": 1, "target_modules": ["nonexistent"], "model": TinyTransformer()})


def test_lora_on_coca(coca_config):
    coca = build("model", "coca", coca_config).eval()
    inputs = {"images": torch.randn(2, 3, 16, 16), "input_ids": torch.randint(0, 50, (2, 6))}
    reference = coca(inputs)
    model = build("model", "lora", {"r": 2, "alpha": 4, "target_modules": ["wq", "wv"], "model": coca})
    assert all(isinstance(layer, LoRALinear) for layer in lora_layers(model).values()) and lora_layers(model)
    for key, value in model(inputs).items():
        torch.testing.assert_close(value, reference[key], rtol=0, atol=0)


def test_dropout_acts_on_the_adapter_branch_only():
    torch.manual_seed(0)
    base = nn.Linear(8, 6)
    layer = LoRALinear.from_linear(base, r=2, alpha=2, dropout=0.5).train()
    x = torch.randn(4, 8)
    # B is zero at the start: even in training mode the base path is untouched by dropout.
    torch.testing.assert_close(layer(x), base(x), rtol=0, atol=0)
    with torch.no_grad():
        layer.lora_B.normal_()
    assert not torch.allclose(layer(x), layer(x))  # a fresh dropout mask on the adapter input each call
    layer.eval()
    torch.testing.assert_close(layer(x), layer.merged_linear()(x), rtol=0, atol=1e-5)


def test_lora_on_gpt2_through_the_compiler_trains_only_adapters_and_merges(tmp_path):
    from modalities import Main, load_app_config_dict

    config = tmp_path / "lora_gpt2.yaml"
    config.write_text(
        """
model_raw:
  component_key: model
  variant_key: gpt2
  config:
    sample_key: input_ids
    prediction_key: logits
    poe_type: ABSOLUTE
    sequence_length: 16
    vocab_size: 64
    n_layer: 2
    n_head_q: 2
    n_head_kv: 2
    n_embd: 32
    ffn_hidden: 64
    dropout: 0.0
    bias: true
    attention_config: {qkv_transforms: [{type_hint: IdentityTransform, config: {}}]}
    attention_implementation: manual
    activation_type: gelu
    attention_norm_config: {norm_type: layer_norm, config: {normalized_shape: 32, eps: 1.0e-5}}
    ffn_norm_config: {norm_type: layer_norm, config: {normalized_shape: 32, eps: 1.0e-5}}
    lm_head_norm_config: {norm_type: layer_norm, config: {normalized_shape: 32, eps: 1.0e-5}}
    use_weight_tying: true
    use_meta_device: false
    seed: 1
model:
  component_key: model
  variant_key: lora
  config:
    model: {instance_key: model_raw, pass_type: BY_REFERENCE}
    r: 4
    alpha: 8
    target_layer_class_names: [GPT2Block]
"""
    )
    model_raw = Main(load_app_config_dict(config)).build_components()["model_raw"]
    inputs = {"input_ids": torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(0))}
    with torch.no_grad():
        base_logits = model_raw(inputs)["logits"].clone()

    model = Main(load_app_config_dict(config)).build_components()["model"]
    assert lora_layers(model), "no GPT-2 Linear layer was wrapped"
    assert 0 < model.lora_trainable_parameters < model.lora_total_parameters
    with torch.no_grad():
        assert torch.equal(model(inputs)["logits"], base_logits)  # B starts at zero

    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(3):
        logits = model(inputs)["logits"]
        loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 64), inputs["input_ids"][:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    with torch.no_grad():
        adapted = model(inputs)["logits"]
        assert not torch.allclose(adapted, base_logits)
        merge_lora(model)
        assert not lora_layers(model)
        torch.testing.assert_close(model(inputs)["logits"], adapted, atol=1e-5, rtol=1e-5)
