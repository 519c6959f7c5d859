"""optimizer/muon: torch's Muon on the hidden matrices, AdamW on the rest, as one optimizer.

The Muon update is checked against Newton-Schulz written out by hand in float64 (torch iterates in bfloat16, so
the tolerance is bfloat16's); the AdamW part against torch's AdamW on the same parameters; the pair as one
optimizer through an lr scheduler and a state dict round trip. Sharded (FSDP2) matrices: fsdp2_clipping_worker.py.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from modalities.optim.config import MuonOptimizerConfig
from modalities.optim.muon import MuonWithAdamW, _Muon, get_muon, newton_schulz

from .hand_muon import NS_TOLERANCE, A, B, C, newton_schulz_by_hand
from .tiny_model import TinyLM, tiny_batch


@pytest.mark.parametrize("shape, adjust_lr_fn, scale", [
    ((3, 5), None, 1.0),                                # wide: sqrt(max(1, 3/5))
    ((5, 3), None, math.sqrt(5 / 3)),                   # tall: the original scaling sqrt(A/B)
    ((5, 3), "match_rms_adamw", 0.2 * math.sqrt(5)),    # Moonshot's: 0.2 sqrt(max(A, B))
])
def test_one_step_is_the_newton_schulz_update_worked_out_by_hand(shape, adjust_lr_fn, scale):
    generator = torch.Generator().manual_seed(3)
    start = torch.randn(shape, generator=generator)
    gradients = [torch.randn(shape, generator=generator) for _ in range(2)]
    param = torch.nn.Parameter(start.clone())
    lr, weight_decay, momentum = 0.1, 0.2, 0.9
    muon = getattr(torch.optim, "Muon", _Muon)([param], lr=lr, weight_decay=weight_decay, momentum=momentum,
                                               adjust_lr_fn=adjust_lr_fn)
    expected, buffer = start.double(), torch.zeros(shape, dtype=torch.float64)
    for gradient in gradients:
        param.grad = gradient.clone()
        muon.step()
        grad = gradient.double()
        buffer = momentum * buffer + (1 - momentum) * grad  # the momentum buffer (torch's lerp form)
        nesterov = grad + momentum * (buffer - grad)        # a look ahead along it
        update = newton_schulz_by_hand(nesterov)
        assert update.abs().max() < 1.5  # the iteration's singular values stay near 1
        expected = expected * (1 - lr * weight_decay) - lr * scale * update
        torch.testing.assert_close(param.detach().double(), expected, rtol=0, atol=lr * scale * NS_TOLERANCE)
    # the difference from plain SGD-momentum is real: the update is not the momentum's direction
    assert not torch.allclose(update / update.norm(), nesterov / nesterov.norm(), atol=0.05)


def test_the_stand_in_for_an_older_torch_steps_as_torchs_muon():
    if not hasattr(torch.optim, "Muon"):
        pytest.skip("this torch has no torch.optim.Muon to compare with")
    generator = torch.Generator().manual_seed(0)
    starts = [torch.randn(6, 4, generator=generator), torch.randn(4, 7, generator=generator)]
    ours = [torch.nn.Parameter(s.clone()) for s in starts]
    theirs = [torch.nn.Parameter(s.clone()) for s in starts]
    options = {"lr": 0.05, "weight_decay": 0.1, "momentum": 0.9, "nesterov": False, "adjust_lr_fn": "match_rms_adamw"}
    optimizers = [_Muon(ours, **options), torch.optim.Muon(theirs, **options)]
    for _ in range(3):
        gradients = [torch.randn(s.shape, generator=generator) for s in starts]
        for params in (ours, theirs):
            for param, gradient in zip(params, gradients):
                param.grad = gradient.clone()
        for optimizer in optimizers:
            optimizer.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)
    assert set(optimizers[0].state[ours[0]]) == set(optimizers[1].state[theirs[0]]) == {"momentum_buffer"}
    torch.testing.assert_close(newton_schulz(starts[0], (A, B, C), 5, 1e-7).double(),
                               newton_schulz_by_hand(starts[0]), rtol=0, atol=NS_TOLERANCE)


MUON_NAMES = {f"blocks.{i}.{layer}.weight" for i in range(2) for layer in ("attn", "mlp")}


def _fields(model, **overrides) -> dict:
    fields = {"lr": 0.02, "wrapped_model": model, "weight_decay": 0.1, "weight_decay_groups_excluded": ["embedding", "layernorm"],
                  "adam_w_lr": 0.01}
    fields.update(overrides)
    return dict(MuonOptimizerConfig(**fields))


def _names(model, groups) -> dict[tuple[str, float], set[str]]:
    name_of = {id(p): n for n, p in model.named_parameters()}
    return {g["weight_decay"]: {name_of[id(p)] for p in g["params"]} for g in groups}


def test_muon_takes_the_hidden_matrices_and_adamw_the_rest():
    model = TinyLM()
    optimizer = get_muon(**_fields(model))
    assert isinstance(optimizer, MuonWithAdamW)
    # Muon: the attention and MLP matrices; AdamW: the embedding, the output head (a matrix, named lm_head),
    # norms and biases. Weight decay: 0.1 but for the embedding and norms.
    assert _names(model, optimizer.muon.param_groups) == {0.1: MUON_NAMES}
    biases = {f"blocks.{i}.{layer}.bias" for i in range(2) for layer in ("attn", "mlp")}
    norms = {f"blocks.{i}.norm.{w}" for i in range(2) for w in ("weight", "bias")} | {"final_norm.weight",
                                                                                      "final_norm.bias"}
    assert _names(model, optimizer.adam_w.param_groups) == {0.1: biases | {"lm_head.weight"},
                                                            0.0: norms | {"wte.weight"}}
    assert [g["lr"] for g in optimizer.param_groups] == [0.02, 0.01, 0.01]
    assert optimizer.param_groups == optimizer.muon.param_groups + optimizer.adam_w.param_groups
    # the output head goes to Muon too when no pattern keeps it out
    everything = get_muon(**_fields(model, adam_w_parameters=[]))
    assert _names(model, everything.muon.param_groups) == {0.1: MUON_NAMES | {"lm_head.weight"}}


def _loss(model) -> torch.Tensor:
    inputs, targets = tiny_batch()
    logits = model({"input_ids": inputs})["logits"]
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


def _train(model, optimizer, steps: int = 3, scheduler=None) -> list[float]:
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = _loss(model)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(loss.item())
    return losses


def test_the_pair_steps_as_torchs_muon_and_adamw_with_hand_made_groups():
    ours, theirs = TinyLM(), TinyLM()
    theirs.load_state_dict(ours.state_dict())
    named = dict(theirs.named_parameters())
    muon_class = getattr(torch.optim, "Muon", _Muon)
    muon = muon_class([named[n] for n in sorted(MUON_NAMES)], lr=0.02, weight_decay=0.1)
    decayed = [p for n, p in named.items() if n not in MUON_NAMES and ("bias" in n and "norm" not in n
                                                                     or n == "lm_head.weight")]
    rest = [p for n, p in named.items() if n not in MUON_NAMES and all(p is not q for q in decayed)]
    adam_w = torch.optim.AdamW([{"params": decayed, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                               lr=0.01, betas=(0.9, 0.95), eps=1e-8)
    _train(ours, get_muon(**_fields(ours)))
    for _ in range(3):
        muon.zero_grad(), adam_w.zero_grad()
        _loss(theirs).backward()
        muon.step(), adam_w.step()
    for name, param in ours.named_parameters():
        torch.testing.assert_close(param, named[name], msg=name)


def test_a_scheduler_sets_both_parts_and_a_state_dict_resumes_the_same_run():
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

    flattened = StateDictOptions(flatten_optimizer_state_dict=True)  # as training/app_state.py writes checkpoints

    def build():
        model = TinyLM()
        optimizer = get_muon(**_fields(model))
        return model, optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)

    model, optimizer, scheduler = build()
    _train(model, optimizer, steps=2, scheduler=scheduler)
    assert optimizer.muon.param_groups[0]["lr"] == pytest.approx(0.02 / 4)
    assert optimizer.adam_w.param_groups[0]["lr"] == pytest.approx(0.01 / 4)
    # as a checkpoint holds it (torch's state-dict API, keyed by parameter name), into a fresh run
    model_state, optimizer_state = copy.deepcopy(get_state_dict(model, optimizer, options=flattened))  # live tensors: copied
    assert "state.blocks.0.attn.weight.momentum_buffer" in optimizer_state
    assert "state.wte.weight.exp_avg_sq" in optimizer_state and "param_groups.wte.weight.betas" in optimizer_state
    scheduler_state = scheduler.state_dict()
    continued = _train(model, optimizer, steps=2, scheduler=scheduler)

    fresh_model, fresh_optimizer, fresh_scheduler = build()
    set_state_dict(fresh_model, fresh_optimizer, model_state_dict=model_state, optim_state_dict=optimizer_state,
                   options=flattened)
    fresh_scheduler.load_state_dict(scheduler_state)
    assert fresh_optimizer.muon.state is fresh_optimizer.state is fresh_optimizer.adam_w.state
    assert fresh_optimizer.muon.param_groups[0] is fresh_optimizer.param_groups[0]
    assert _train(fresh_model, fresh_optimizer, steps=2, scheduler=fresh_scheduler) == continued


def test_config_defaults_and_a_bad_pattern():
    config = MuonOptimizerConfig(lr=0.02, wrapped_model=None)
    assert (config.momentum, config.nesterov, config.ns_steps, config.eps) == (0.95, True, 5, 1e-7)
    assert config.ns_coefficients == (A, B, C) and config.adjust_lr_fn is None and config.adam_w_lr is None
    with pytest.raises(ValidationError, match=r"adam_w_parameters\[0\] '\(lm_head' is not a regular expression"):
        MuonOptimizerConfig(lr=0.02, wrapped_model=None, adam_w_parameters=["(lm_head"])
    with pytest.raises(ValidationError, match="ns_steps"):
        MuonOptimizerConfig(lr=0.02, wrapped_model=None, ns_steps=100)


def test_a_quickstart_run_with_muon_resumes_with_the_same_losses(tmp_path):
    """The real stack on one process: optimizer/muon in the quick-start config, checkpointed at step 2 and
    resumed; the resumed steps give the uninterrupted run's losses (the momentum and AdamW moments came back)."""
    from tests.training.conftest import REPO, read_results, train_in_process

    quickstart = REPO / "configs" / "quickstart.yaml"
    muon = ("optimizer={component_key: optimizer, variant_key: muon, config: {lr: 3e-3, weight_decay: 0.1, "
            "weight_decay_groups_excluded: [embedding, layernorm], adjust_lr_fn: match_rms_adamw, "
            "wrapped_model: {instance_key: initialized_model, pass_type: BY_REFERENCE}}}")
    # a constant lr, so that the steps after the resume move the weights by what the restored state says
    constant = ("lr_scheduler={component_key: scheduler, variant_key: dummy_lr, config: {optimizer: "
                "{instance_key: optimizer, pass_type: BY_REFERENCE}}}")
    small = ["--set", muon, "--set", constant, "--set", "settings.step_profile.sequence_length=32",
             "--set", "settings.step_profile.local_train_micro_batch_size=2",
             "--set", "settings.intervals.checkpointing_interval_in_steps=2",
             "--set", "settings.intervals.evaluation_interval_in_steps=100",
             "--set", "settings.intervals.training_log_interval_in_steps=1",
             "--set", "evaluation_subscriber={component_key: results_subscriber, variant_key: dummy, config: {}}"]
    steps = ["--set", "settings.training_target.num_target_steps=5"]
    assert train_in_process(tmp_path, "full", *small, *steps, config=quickstart) == 0
    assert train_in_process(tmp_path, "resumed", *small, *steps, "--resume",
                            str(tmp_path / "full" / "checkpoints" / "step_2"), config=quickstart) == 0
    full, resumed = read_results(tmp_path / "full"), read_results(tmp_path / "resumed")
    assert sorted(full) == [1, 2, 3, 4, 5] and sorted(resumed) == [3, 4, 5]
    assert {step: full[step] for step in (3, 4, 5)} == resumed  # bit-identical on CPU in fp32
