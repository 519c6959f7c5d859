import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

from modalities.optim.config import AdamOptimizerConfig, AdamWOptimizerConfig
from modalities.optim.optimizers import OptimizerGroupError, get_adam, get_adam_w, unwrapped_parameter_name

from .tiny_model import TinyLM, tiny_batch

EXCLUDED_NAMES = {"wte.weight", "final_norm.weight", "final_norm.bias"} | {
    f"blocks.{i}.norm.{w}" for i in range(2) for w in ("weight", "bias")
}


def _fields(model, **overrides) -> dict:
    fields = dict(lr=1e-2, betas=[0.9, 0.95], eps=1e-8, weight_decay=0.1,
                  weight_decay_groups_excluded=["embedding", "layernorm"], wrapped_model=model)
    fields.update(overrides)
    return fields


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int = 3) -> None:
    inputs, targets = tiny_batch()
    for _ in range(steps):
        optimizer.zero_grad()
        logits = model({"input_ids": inputs})["logits"]
        F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1)).backward()
        optimizer.step()


def _names_by_weight_decay(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[float, set[str]]:
    name_of = {id(p): unwrapped_parameter_name(n) for n, p in model.named_parameters()}
    return {g["weight_decay"]: {name_of[id(p)] for p in g["params"]} for g in optimizer.param_groups}


@pytest.mark.parametrize("config_class, builder", [(AdamWOptimizerConfig, get_adam_w), (AdamOptimizerConfig, get_adam)])
def test_excluded_groups_get_no_weight_decay(config_class, builder):
    model = TinyLM()
    config = config_class(**_fields(model))
    optimizer = builder(**dict(config))
    groups = _names_by_weight_decay(model, optimizer)
    all_names = {n for n, _ in model.named_parameters()}
    assert groups[0.0] == EXCLUDED_NAMES
    assert groups[0.1] == all_names - EXCLUDED_NAMES
    assert optimizer.defaults["betas"] == (0.9, 0.95)


@pytest.mark.parametrize("builder, torch_class", [(get_adam_w, torch.optim.AdamW), (get_adam, torch.optim.Adam)])
def test_steps_match_torch_optimizer_with_hand_made_groups(builder, torch_class):
    ours, reference = TinyLM(), TinyLM()
    reference.load_state_dict(ours.state_dict())
    optimizer = builder(**_fields(ours, lr=0.05, weight_decay=0.5))
    named = dict(reference.named_parameters())
    reference_optimizer = torch_class(
        [
            {"params": [p for n, p in named.items() if n not in EXCLUDED_NAMES], "weight_decay": 0.5},
            {"params": [named[n] for n in EXCLUDED_NAMES], "weight_decay": 0.0},
        ],
        lr=0.05, betas=(0.9, 0.95), eps=1e-8,
    )
    _train(ours, optimizer)
    _train(reference, reference_optimizer)
    for (name, p), q in zip(ours.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, msg=name)
    # and the decay did something: the same run without exclusions ends elsewhere
    other = TinyLM()
    _train(other, get_adam_w(**_fields(other, lr=0.05, weight_decay=0.5, weight_decay_groups_excluded=[])))
    assert not torch.allclose(other.wte.weight, ours.wte.weight)


def test_no_exclusions_or_zero_decay_make_one_group_even_without_groups():
    plain = nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2))
    optimizer = get_adam_w(**_fields(plain, weight_decay_groups_excluded=[]))
    assert len(optimizer.param_groups) == 1 and optimizer.param_groups[0]["weight_decay"] == 0.1
    optimizer = get_adam_w(**_fields(plain, weight_decay=0.0))
    assert len(optimizer.param_groups) == 1 and optimizer.param_groups[0]["weight_decay"] == 0.0


def test_unknown_group_lists_the_model_groups():
    with pytest.raises(OptimizerGroupError, match=r"\['embeddings'\].*\['embedding', 'layernorm', 'linear'\]"):
        get_adam_w(**_fields(TinyLM(), weight_decay_groups_excluded=["embeddings"]))


def test_model_without_groups_cannot_exclude():
    with pytest.raises(OptimizerGroupError, match="declares no weight_decay_groups"):
        get_adam_w(**_fields(nn.Linear(2, 2)))


def test_unmatched_parameter_is_named():
    model = TinyLM()
    model._weight_decay_groups = {"linear": [r"\.attn\.", r"\.mlp\.", r"^lm_head\."], "embedding": [r"^wte\."],
                                  "layernorm": [r"^blocks\.\d+\.norm\."]}
    with pytest.raises(OptimizerGroupError, match=r"in no group: final_norm\.weight, final_norm\.bias"):
        get_adam_w(**_fields(model))


def test_doubly_matched_parameter_is_named_with_its_groups():
    model = TinyLM()
    model._weight_decay_groups = dict(model.weight_decay_groups, embedding=[r"^wte\.", r"^lm_head\."])
    with pytest.raises(OptimizerGroupError, match=r"more than one group: lm_head\.weight \(in linear, embedding\)"):
        get_adam_w(**_fields(model))


def test_frozen_parameters_are_left_out():
    model = TinyLM()
    model.wte.weight.requires_grad_(False)
    optimizer = get_adam_w(**_fields(model))
    assert "wte.weight" not in set().union(*_names_by_weight_decay(model, optimizer).values())


def test_wrapper_prefixes_are_stripped_before_matching():
    model = TinyLM()
    for i, block in enumerate(model.blocks):
        model.blocks[i] = checkpoint_wrapper(block)
    assert any("_checkpoint_wrapped_module" in n for n, _ in model.named_parameters())
    optimizer = get_adam_w(**_fields(model))
    assert _names_by_weight_decay(model, optimizer)[0.0] == EXCLUDED_NAMES


def test_groups_found_through_an_outer_wrapper():
    class Wrapper(nn.Module):  # like torch.compile's OptimizedModule: the model under _orig_mod
        def __init__(self, inner):
            super().__init__()
            self._orig_mod = inner

    model = TinyLM()
    wrapped = Wrapper(model)
    optimizer = get_adam_w(**_fields(wrapped))
    assert _names_by_weight_decay(wrapped, optimizer)[0.0] == EXCLUDED_NAMES


def test_group_sizes_are_logged(caplog):
    with caplog.at_level(logging.INFO, logger="modalities.optim.optimizers"):
        get_adam_w(**_fields(TinyLM()))
    text = caplog.text
    # embedding 13*8, layernorms 3 * (8 + 8), linear 2 * 2 * (64 + 8) + 13*8
    assert "embedding: 1 tensors, 104 parameters" in text
    assert "layernorm: 6 tensors, 48 parameters" in text
    assert "linear: 9 tensors, 392 parameters" in text


def test_config_field_errors():
    model = TinyLM()
    with pytest.raises(Exception, match="betas"):
        AdamWOptimizerConfig(**_fields(model, betas=[0.9]))
    with pytest.raises(Exception, match="lr"):
        AdamWOptimizerConfig(**_fields(model, lr=-1.0))
    config = AdamWOptimizerConfig(**_fields(model, eps="1e-8"))  # YAML 1.1 loaders hand over such strings
    assert config.eps == 1e-8
