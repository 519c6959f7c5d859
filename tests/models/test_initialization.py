"""model_initialization/composed and model/model_initialized: statistics of the initialized weights, meta-device
models and FSDP2 (DTensor) sharded models."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from modalities.interop.hf_gpt2 import to_hf_gpt2
from modalities.models.initialization.composed import composed_initializer, initialize_model
from modalities.models.initialization.config import ComposedModelInitializationConfig
from tests.models.helpers import build_from_config, build_gpt2
from tests.tolerances import assert_close_float32

N_LAYER, N_EMBD = 4, 64


def initializer(**fields):
    config = ComposedModelInitializationConfig(model_type="gpt2", mean=0.0, **fields)
    return build_from_config(composed_initializer, config)


def params(model) -> dict[str, torch.Tensor]:
    return dict(model.named_parameters())


def assert_std(tensor: torch.Tensor, expected: float) -> None:
    assert tensor.float().std().item() == pytest.approx(expected, rel=0.06)


@pytest.mark.parametrize("activation", ["gelu", "swiglu"])
def test_scaled_init_divides_residual_projections_by_sqrt_2L(activation):
    model = build_gpt2(
        n_layer=N_LAYER, n_embd=N_EMBD, activation_type=activation, enforce_swiglu_hidden_dim_multiple_of=64
    )
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(3.0)
    initialize_model(model, initializer(weight_init_type="scaled", std=0.02, num_layers=N_LAYER, seed=0))
    scaled_std = 0.02 / math.sqrt(2 * N_LAYER)
    last_mlp = "W_2" if activation == "swiglu" else "c_proj"
    for name, p in params(model).items():
        if name.endswith(("attn.c_proj.weight", f"mlp.{last_mlp}.weight")):
            assert_std(p, scaled_std)
        elif name.endswith("weight") and "norm" not in name:
            assert_std(p, 0.02)
        elif "norm" in name:
            # As in the reference, every module is reset to its own default before the named init.
            expected = 1.0 if name.endswith("weight") else 0.0
            assert torch.all(p == expected), f"{name}: norms are reset to their defaults"
        else:
            assert torch.all(p == 0.0), f"{name}: biases are zeroed"


def test_plain_init_with_auto_std_and_scaled_embed():
    model = build_gpt2(n_layer=N_LAYER, n_embd=N_EMBD)
    initialize_model(model, initializer(weight_init_type="plain", std="auto", hidden_dim=N_EMBD))
    auto_std = math.sqrt(2 / (5 * N_EMBD))  # the reference's 'small init'
    assert_std(params(model)["transformer.h.0.attn.c_proj.weight"], auto_std)
    assert_std(params(model)["transformer.h.0.mlp.c_fc.weight"], auto_std)

    initialize_model(model, initializer(weight_init_type="scaled_embed", std=0.02, num_layers=N_LAYER))
    assert_std(params(model)["transformer.wte.weight"], math.sqrt(0.4))
    assert_std(params(model)["transformer.wpe.weight"], math.sqrt(0.4))
    assert_std(params(model)["transformer.h.1.mlp.c_proj.weight"], 0.02 / math.sqrt(2 * N_LAYER))


def test_meta_device_model_is_materialized_and_initialized():
    model = build_gpt2(use_meta_device=True, attention_norm_config={"norm_type": "rms_norm", "config": {"ndim": 32}})
    assert all(p.is_meta for p in model.parameters())
    initialize_model(model, initializer(weight_init_type="scaled", std=0.02, num_layers=2, seed=0))
    for name, p in model.named_parameters():
        assert p.device.type == "cpu" and torch.isfinite(p).all(), name
    assert torch.all(params(model)["transformer.h.0.attention_norm.weight"] == 1.0)  # reset_parameters ran
    assert torch.all(params(model)["transformer.lm_head_norm.weight"] == 1.0)
    logits = model({"input_ids": torch.randint(0, 64, (2, 16))})["logits"]
    assert torch.isfinite(logits).all()


def test_tied_weights_stay_tied_after_materializing():
    model = build_gpt2(use_meta_device=True, use_weight_tying=True)
    initialize_model(model, initializer(weight_init_type="plain", std=0.02))
    assert model.transformer.lm_head.weight is model.transformer.wte.weight


def test_same_seed_gives_same_weights():
    a, b = build_gpt2(seed=1), build_gpt2(seed=2)
    for model in (a, b):
        initialize_model(model, initializer(weight_init_type="plain", std=0.02, seed=7))
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb), name


def test_fsdp2_sharded_meta_model_is_initialized_in_place(tmp_path):
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,))
        model = build_gpt2(use_meta_device=True, n_layer=N_LAYER, n_embd=N_EMBD)
        for block in model.transformer.h.values():
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
        initialize_model(model, initializer(weight_init_type="scaled", std=0.02, num_layers=N_LAYER, seed=0))
        assert model.transformer.lm_head.weight is model.transformer.wte.weight
        projection = model.transformer.h["0"].attn.c_proj.weight
        assert isinstance(projection, DTensor) and projection.device.type == "cpu"
        assert_std(projection.full_tensor(), 0.02 / math.sqrt(2 * N_LAYER))
        assert_std(model.transformer.h["0"].attn.q_attn.weight.full_tensor(), 0.02)
        hf_model = to_hf_gpt2(model)  # export gathers the DTensor shards
        ids = torch.randint(0, 64, (2, 16))
        logits = model({"input_ids": ids})["logits"]
        assert torch.isfinite(logits).all()
        with torch.no_grad():
            assert_close_float32(hf_model(input_ids=ids).logits, logits.detach())
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"weight_init_type": "plain", "std": "auto"}, "needs hidden_dim"),
        ({"weight_init_type": "plain", "std": 0.02, "hidden_dim": 64}, "only used with std: auto"),
        ({"weight_init_type": "plain", "std": 0.02, "num_layers": 2}, "remove it for plain"),
        ({"weight_init_type": "scaled", "std": 0.02}, "needs num_layers"),
        ({"weight_init_type": "plain", "std": "big"}, "auto"),
    ],
)
def test_invalid_combinations_are_explained(fields, message):
    with pytest.raises(ValidationError, match=message):
        ComposedModelInitializationConfig(model_type="gpt2", mean=0.0, **fields)
