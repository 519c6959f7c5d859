"""model/moe and loss/moe_cross_entropy: routing, capacity, overflow and the auxiliary losses against numbers worked
out by hand, the block against a per-token loop, every experts backend against the loop, the whole model against
transformers' Qwen3-MoE."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from modalities.batch import InferenceResultBatch
from modalities.models.moe import experts as experts_module
from modalities.models.moe.config import MoEModelConfig, moe_capacity
from modalities.models.moe.experts import BACKENDS, grouped_mm_runs, padded_bmm_is_cheaper, run_experts
from modalities.models.moe.loss import MoECrossEntropyLoss
from modalities.models.moe.model import QwenModel, build_moe_model
from modalities.models.moe.routing import load_balancing_loss, route, router_z_loss
from modalities.models.moe.statistics import summarize

# Router probabilities of 5 tokens over 4 experts, chosen so that top-2 and the queues are easy to follow.
PROBS = torch.tensor([
    [0.40, 0.30, 0.20, 0.10],  # experts 0, 1
    [0.50, 0.10, 0.30, 0.10],  # experts 0, 2
    [0.60, 0.10, 0.10, 0.20],  # experts 0, 3
    [0.10, 0.20, 0.30, 0.40],  # experts 3, 2
    [0.10, 0.45, 0.35, 0.10],  # experts 1, 2
])


def tiny_config(**overrides) -> dict:
    config = dict(vocab_size=64, max_seq_len=16, d_model=32, n_heads=4, n_kv_heads=2, num_layers=2, d_ff=48,
                  moe_num_experts=4, moe_top_k=2, moe_d_ff=16, moe_capacity_factor=4.0, moe_min_capacity=1)
    config.update(overrides)
    return config


def tiny_model(**overrides) -> QwenModel:
    torch.manual_seed(0)
    return build_moe_model(**tiny_config(**overrides))


# -- routing, by hand ----------------------------------------------------------------------------------------------

def test_capacity_is_the_reference_rule():
    # max(ceil(factor * tokens / experts), min_capacity): not multiplied by top_k
    assert moe_capacity(1.25, 256, 8, 4) == 40  # ceil(40.0)
    assert moe_capacity(1.25, 257, 8, 4) == 41  # ceil(40.16)
    assert moe_capacity(1.25, 16, 8, 4) == 4  # ceil(2.5) = 3 < min_capacity
    assert moe_capacity(1.5, 5, 4, 1) == 2  # ceil(1.875)


def test_routing_keeps_the_first_tokens_of_each_expert_up_to_capacity():
    routing = route(PROBS.log(), top_k=2, capacity=2)
    # demand: expert 0 <- tokens 0, 1, 2; 1 <- 0, 4; 2 <- 1, 3, 4; 3 <- 2, 3
    assert routing.demand.tolist() == [3, 2, 3, 2]
    # capacity 2: token 2's slot at expert 0 and token 4's at expert 2 do not fit
    assert routing.counts.tolist() == [2, 2, 2, 2]
    assert routing.token_ids.tolist() == [0, 1, 0, 4, 1, 3, 2, 3]
    expected = [4 / 7, 5 / 8, 3 / 7, 0.45 / 0.80, 3 / 8, 3 / 7, 2 / 8, 4 / 7]  # p / (sum of the token's top 2)
    torch.testing.assert_close(routing.weights, torch.tensor(expected), rtol=1e-5, atol=0)


@pytest.mark.parametrize(("capacity", "kept"), [(3, [3, 2, 3, 2]), (10, [3, 2, 3, 2]), (1, [1, 1, 1, 1])])
def test_routing_at_and_below_the_demand(capacity, kept):
    routing = route(PROBS.log(), top_k=2, capacity=capacity)
    assert routing.counts.tolist() == kept
    assert routing.token_ids.numel() == sum(kept)


def test_top_1_routes_each_token_to_its_most_probable_expert_with_weight_one():
    routing = route(PROBS.log(), top_k=1, capacity=5)
    assert routing.token_ids.tolist() == [0, 1, 2, 4, 3]  # experts 0, 0, 0, 1, 3
    assert routing.counts.tolist() == [3, 1, 0, 1]
    torch.testing.assert_close(routing.weights, torch.ones(5), rtol=1e-6, atol=0)


def test_load_balancing_loss_by_hand():
    # importance: column sums 1.7, 1.15, 1.25, 0.9 of 5 -> shares .34, .23, .25, .18
    # kept load with capacity 3 (nothing dropped): 3, 2, 3, 2 of 10
    routing = route(PROBS.log(), top_k=2, capacity=3)
    expected = 4 * (0.34 * 0.3 + 0.23 * 0.2 + 0.25 * 0.3 + 0.18 * 0.2)  # 1.036
    assert float(load_balancing_loss(routing.probs, routing.counts)) == pytest.approx(expected, rel=1e-5)
    # uniform kept load: the loss is E * sum(share) / E = 1 whatever the importance
    assert float(load_balancing_loss(PROBS, torch.tensor([2, 2, 2, 2]))) == pytest.approx(1.0, rel=1e-6)
    # everything on expert 0 with all probability there: E
    assert float(load_balancing_loss(torch.tensor([[1.0, 0, 0, 0]] * 3), torch.tensor([3, 0, 0, 0]))) == \
        pytest.approx(4.0, rel=1e-6)


def test_router_z_loss_by_hand():
    shifts = torch.tensor([0.0, 1.0, 2.0, -1.0, 0.5])
    logits = PROBS.log() + shifts[:, None]  # logsumexp = log(1) + shift
    assert float(router_z_loss(logits)) == pytest.approx((0 + 1 + 4 + 1 + 0.25) / 5, rel=1e-5)


# -- the block against a per-token loop -------------------------------------------------------------------------------

def _expert(block, e: int, x: torch.Tensor) -> torch.Tensor:
    w1, w2, w3 = block.experts.w1[e], block.experts.w2[e], block.experts.w3[e]
    return w3 @ (F.silu(w1 @ x) * (w2 @ x))


def loop_reference(block, x: torch.Tensor, policy: str, temperature: float = 1.0, unassigned: list | None = None):
    """The block's output written out token by token: softmax, top-k, queues counted in Python. ``unassigned``
    collects the tokens none of whose slots fit."""
    B, T, D = x.shape
    flat = x.reshape(-1, D)
    probs = torch.softmax(flat @ block.router.weight.T / temperature, dim=-1)
    E, k = probs.shape[1], block.top_k
    capacity = max(math.ceil(block.capacity_factor * flat.shape[0] / E), block.min_capacity)
    taken = [0] * E
    rows = []
    for n in range(flat.shape[0]):
        values, experts = torch.topk(probs[n], k)
        out, any_kept = torch.zeros(D), False
        for value, e in zip(values, experts.tolist()):
            taken[e] += 1
            if taken[e] <= capacity:
                out = out + value / values.sum() * _expert(block, e, flat[n])
                any_kept = True
        if not any_kept and unassigned is not None:
            unassigned.append(n)
        rows.append(out if any_kept or policy == "drop" else flat[n])
    return torch.stack(rows).view(B, T, D)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("capacity_factor", "policy"), [(4.0, "residual"), (0.5, "residual"), (0.5, "drop")])
def test_block_equals_the_per_token_loop(backend, capacity_factor, policy):
    model = tiny_model(moe_capacity_factor=capacity_factor, moe_overflow_policy=policy, moe_experts_backend=backend)
    block = model.layers["0"].ffn
    x = torch.randn(2, 6, 32, generator=torch.Generator().manual_seed(3))
    unassigned = []
    with torch.no_grad():
        got = block(x)
        expected = loop_reference(block, x, policy, unassigned=unassigned)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # capacity max(ceil(0.5 x 12 / 4), 1) = 2 slots per expert, 8 of 24: some tokens keep none (the policy shows)
    assert bool(unassigned) == (capacity_factor < 1)


def test_temperature_divides_the_router_logits():
    model = tiny_model(moe_router_temperature=0.5).eval()
    block = model.layers["1"].ffn
    x = torch.randn(1, 5, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(block(x), loop_reference(block, x, "residual", temperature=0.5), rtol=1e-5,
                                   atol=1e-6)


def test_router_noise_and_dropout_act_in_training_only():
    model = tiny_model(moe_router_noise_std=1.0, moe_router_dropout=0.5)
    block = model.layers["0"].ffn
    x = torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(5))
    block.eval()
    with torch.no_grad():
        clean = block.router_logits(x[0])
        torch.testing.assert_close(clean, x[0] @ block.router.weight.T, rtol=1e-6, atol=1e-6)
        block.train()
        assert not torch.allclose(block.router_logits(x[0]), clean)


def test_auxiliary_losses_by_coef():
    x = torch.randn(1, 5, 32, generator=torch.Generator().manual_seed(6))
    both = tiny_model(moe_aux_loss_coef=0.01, moe_z_loss_coef=0.1).layers["0"].ffn
    with torch.no_grad():
        both(x)
        logits = x[0] @ both.router.weight.T
        routing = route(logits, 2, moe_capacity(4.0, 5, 4, 1))
    expected = 0.01 * load_balancing_loss(routing.probs, routing.counts) + 0.1 * router_z_loss(logits)
    torch.testing.assert_close(both.last_aux_loss, expected, rtol=1e-5, atol=0)
    none = tiny_model(moe_aux_loss_coef=0.0, moe_z_loss_coef=0.0).layers["0"].ffn
    none(x)
    assert none.last_aux_loss is None
    z_only = tiny_model(moe_aux_loss_coef=0.0, moe_z_loss_coef=0.1).layers["0"].ffn
    with torch.no_grad():
        z_only(x)
    torch.testing.assert_close(z_only.last_aux_loss, 0.1 * router_z_loss(logits), rtol=1e-5, atol=0)


# -- the experts backends ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("backend", [*BACKENDS, "auto"])
@pytest.mark.parametrize("counts", [[3, 0, 5, 1], [0, 0, 0, 0], [9, 0, 0, 0], [1, 1, 1, 1], [0, 1, 0, 0]])
def test_every_backend_gives_the_looped_outputs_and_gradients(backend, counts, dtype):
    if backend == "grouped_mm" and dtype == torch.float64:
        pytest.skip("torch._grouped_mm takes float32, bfloat16 and float16 only")
    generator = torch.Generator().manual_seed(7)
    w1, w2, w3 = (torch.randn(4, *shape, generator=generator, dtype=dtype, requires_grad=True)
                  for shape in ((16, 8), (16, 8), (8, 16)))
    x = torch.randn(sum(counts), 8, generator=generator, dtype=dtype, requires_grad=True)
    counts = torch.tensor(counts)
    got = run_experts(x, counts, w1, w2, w3, backend)
    (got * torch.arange(got.numel()).view_as(got)).sum().backward()
    got_grads = [t.grad.clone() for t in (x, w1, w2, w3)]
    for t in (x, w1, w2, w3):
        t.grad = None
    # the loop written out here: expert e on rows start..start+count
    rows, start = [], 0
    for e, count in enumerate(counts.tolist()):
        for row in x[start : start + count]:
            rows.append(w3[e] @ (F.silu(w1[e] @ row) * (w2[e] @ row)))
        start += count
    expected = torch.stack(rows) if rows else torch.zeros(0, 8, dtype=dtype)
    # each output sums 16 products of magnitude ~5 (unit normal weights): float32 rounding ~1e-5 absolute
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    if rows:
        (expected * torch.arange(expected.numel()).view_as(expected)).sum().backward()
        # gradients sum up to 72 weighted products in another order: float32 cancellation allows ~1e-4 relative
        for mine, theirs in zip(got_grads, (x.grad, w1.grad, w2.grad, w3.grad)):
            torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)
    else:  # no token: zero gradients, but gradients all the same (every rank reduces the same under FSDP2)
        assert all(g is not None and not g.any() for g in got_grads[1:])


# auto's cost model where grouped_mm does not run, on CPU with d_model 256, d_ff 512: a routed row costs
# 9 x 256 x 512 = 9 x 2**17 multiply-adds and the loop's overhead per expert 9 x 2**19, so padding is worth up to
# 4 rows per expert the loop would call (those with rows). Padding rows = E x max(counts) - sum(counts).
@pytest.mark.parametrize(("counts", "padded"), [
    ([5, 5, 5, 5], True),          # balanced: no padding
    ([20, 0, 0, 0], False),        # one expert takes all: 60 padding rows > 4 x 1
    ([4, 0, 0, 0], False),         # the same with 4 rows: 12 > 4
    ([3, 0, 3, 0], True),          # two empty experts: 6 <= 4 x 2
    ([6, 0, 6, 0], False),         # 12 > 8
    ([1, 0, 0, 0], True),          # a single token of 4 experts: 3 <= 4
    ([1, 0, 0, 0, 0, 0, 0, 0], False),  # a single token of 8 experts: 7 > 4
    ([0, 0, 0, 0], True),          # zero tokens: 0 <= 0 (run_experts returns before choosing)
    ([7], True),                   # one expert: never padding
    ([9, 4, 4, 3], True),          # exactly at the threshold: 36 - 20 = 16 <= 16 (ties go to padded_bmm)
    ([9, 4, 4, 2], False),         # one past it: 17 > 16
])
def test_padded_bmm_or_the_loop_by_hand_on_cpu(counts, padded):
    assert padded_bmm_is_cheaper(counts, 256, 512, "cpu") is padded


# CUDA, d_model 1024, d_ff 768: the overhead 9 x 2**29 over 9 x 786,432 per row is 682.7 padding rows per expert.
@pytest.mark.parametrize(("counts", "padded"), [([682, 0], True), ([683, 0], False), ([1365, 0, 0], False),
                                                ([700, 18], True)])  # 682 <= 1365.3 (two experts called)
def test_padded_bmm_or_the_loop_by_hand_on_cuda(counts, padded):
    assert padded_bmm_is_cheaper(counts, 1024, 768, "cuda") is padded


@pytest.mark.parametrize(("device", "dtype", "d_model", "d_ff", "capability", "runs"), [
    ("cpu", torch.float32, 256, 512, None, True),
    ("cpu", torch.float32, 4, 12, None, True),       # rows of 16 and 48 bytes
    ("cpu", torch.float32, 6, 16, None, False),      # 24-byte rows
    ("cpu", torch.float32, 8, 10, None, False),      # 40-byte hidden rows
    ("cpu", torch.bfloat16, 8, 16, None, True),
    ("cpu", torch.bfloat16, 12, 16, None, False),    # 24 bytes
    ("cpu", torch.float16, 8, 8, None, True),
    ("cpu", torch.float64, 256, 512, None, False),   # not a dtype torch._grouped_mm takes
    ("cuda", torch.bfloat16, 256, 512, (9, 0), True),
    ("cuda", torch.bfloat16, 256, 512, (10, 0), True),
    ("cuda", torch.bfloat16, 256, 512, (8, 0), False),  # torch's loop with a host sync: the cost model decides
    ("cuda", torch.float32, 256, 512, (9, 0), False),
    ("cuda", torch.bfloat16, 256, 500, (9, 0), False),  # 1,000-byte hidden rows
    ("mps", torch.float32, 256, 512, None, False),
])
def test_where_auto_takes_grouped_mm(device, dtype, d_model, d_ff, capability, runs):
    assert grouped_mm_runs(device, dtype, d_model, d_ff, capability) is runs


@pytest.fixture
def calls(monkeypatch) -> list[str]:
    """The implementations run_experts calls, in order (each still runs); torch._grouped_mm's failures forgotten."""
    called: list[str] = []
    for name, implementation in dict(experts_module._IMPLEMENTATIONS).items():
        monkeypatch.setitem(experts_module._IMPLEMENTATIONS, name,
                            lambda *a, _name=name, _run=implementation, **k: called.append(_name) or _run(*a, **k))
    monkeypatch.setattr(experts_module, "_grouped_mm_failed", set())
    return called


@pytest.mark.parametrize(("dtype", "d_model", "counts", "expected"), [
    (torch.float32, 256, [20, 0, 0, 0], "grouped_mm"),  # CPU runs grouped_mm whatever the counts
    (torch.float64, 256, [5, 5, 5, 5], "padded_bmm"),
    (torch.float64, 256, [20, 0, 0, 0], "looped"),
    (torch.float32, 250, [20, 0, 0, 0], "looped"),      # 1,000-byte rows: 60 x 9 x 250 x 512 > 9 x 2**19
    (torch.float32, 250, [5, 5, 5, 5], "padded_bmm"),
])
def test_auto_runs_the_choice(calls, dtype, d_model, counts, expected):
    generator = torch.Generator().manual_seed(8)
    w1, w2 = (torch.randn(4, 512, d_model, generator=generator, dtype=dtype) for _ in range(2))
    w3 = torch.randn(4, d_model, 512, generator=generator, dtype=dtype)
    x = torch.randn(sum(counts), d_model, generator=generator, dtype=dtype)
    run_experts(x, torch.tensor(counts), w1, w2, w3, "auto")
    assert calls == [expected]


def test_auto_falls_back_by_the_counts_once_grouped_mm_fails(calls, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("no kernel for this device")

    monkeypatch.setattr(torch, "_grouped_mm", refuse)
    generator = torch.Generator().manual_seed(9)
    w1, w2 = (torch.randn(4, 512, 256, generator=generator) for _ in range(2))
    w3 = torch.randn(4, 256, 512, generator=generator)
    with pytest.warns(UserWarning, match="torch._grouped_mm failed on cpu torch.float32.*this call: looped"):
        run_experts(torch.randn(20, 256, generator=generator), torch.tensor([20, 0, 0, 0]), w1, w2, w3, "auto")
    run_experts(torch.randn(20, 256, generator=generator), torch.tensor([5, 5, 5, 5]), w1, w2, w3, "auto")
    assert calls == ["grouped_mm", "looped", "padded_bmm"]  # the second call does not try grouped_mm again


# -- the whole model --------------------------------------------------------------------------------------------------

REFERENCE_NAMES = [  # the reference's QwenModel, one block (its state dict keys)
    "layers.0.pre_attn_norm.weight", "layers.0.attn.q_proj.weight", "layers.0.attn.k_proj.weight",
    "layers.0.attn.v_proj.weight", "layers.0.attn.o_proj.weight", "layers.0.attn.q_norm.weight",
    "layers.0.attn.k_norm.weight", "layers.0.pre_ffn_norm.weight", "layers.0.ffn.router.weight",
    "layers.0.ffn.experts.w1", "layers.0.ffn.experts.w2", "layers.0.ffn.experts.w3",
]


@pytest.mark.parametrize("tie", [False, True])
def test_parameter_names_and_shapes_are_the_references(tie):
    model = tiny_model(num_layers=1, tie_embeddings=tie)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    assert list(shapes) == ["token_emb.weight", *REFERENCE_NAMES, "final_norm.weight", "lm_head.weight"]
    assert shapes["layers.0.attn.k_proj.weight"] == (16, 32)  # 2 kv heads of 8
    assert shapes["layers.0.attn.q_norm.weight"] == (8,)
    assert shapes["layers.0.ffn.router.weight"] == (4, 32)
    assert shapes["layers.0.ffn.experts.w1"] == shapes["layers.0.ffn.experts.w2"] == (4, 16, 32)
    assert shapes["layers.0.ffn.experts.w3"] == (4, 32, 16)
    assert (model.lm_head.weight is model.token_emb.weight) == tie
    # 64*32 embedding, per block 2*32 norms + (32+16+16+32)*32 attention + 2*8 q/k norms + 4*32 router
    # + 3 * 4*16*32 experts, 32 final norm, 64*32 head unless tied
    block = 64 + 96 * 32 + 16 + 128 + 3 * 2048
    assert sum(p.numel() for p in model.parameters()) == 2048 + block + 32 + (0 if tie else 2048)


def qwen3_moe_from(model: QwenModel):
    """transformers' Qwen3MoeForCausalLM with our model's weights (the mapping a Hugging Face export uses)."""
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    c = model.config
    hf = Qwen3MoeForCausalLM(Qwen3MoeConfig(
        vocab_size=c.vocab_size, hidden_size=c.d_model, intermediate_size=c.d_ff, num_hidden_layers=c.num_layers,
        num_attention_heads=c.n_heads, num_key_value_heads=c.n_kv_heads, max_position_embeddings=c.max_seq_len,
        rms_norm_eps=c.norm_eps, rope_parameters={"rope_type": "default", "rope_theta": c.rope_base},
        num_experts=c.moe_num_experts, num_experts_per_tok=c.moe_top_k, moe_intermediate_size=c.moe_d_ff,
        norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[], tie_word_embeddings=c.tie_embeddings,
        attn_implementation="eager",
    )).eval()
    ours = model.state_dict()
    theirs = {"model.embed_tokens.weight": ours["token_emb.weight"], "model.norm.weight": ours["final_norm.weight"],
              "lm_head.weight": ours["lm_head.weight"]}
    renames = {"pre_attn_norm": "input_layernorm", "pre_ffn_norm": "post_attention_layernorm", "attn": "self_attn",
               "ffn.router": "mlp.gate"}
    for name, tensor in ours.items():
        if not name.startswith("layers."):
            continue
        _, index, rest = name.split(".", 2)
        if rest == "ffn.experts.w1":
            theirs[f"model.layers.{index}.mlp.experts.gate_up_proj"] = torch.cat(
                [tensor, ours[f"layers.{index}.ffn.experts.w2"]], dim=1)
        elif rest == "ffn.experts.w3":
            theirs[f"model.layers.{index}.mlp.experts.down_proj"] = tensor
        elif rest != "ffn.experts.w2":
            for old, new in renames.items():
                rest = rest.replace(old, new)
            theirs[f"model.layers.{index}.{rest}"] = tensor
    missing, unexpected = hf.load_state_dict(theirs, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    return hf


@pytest.mark.parametrize("tie", [False, True])
def test_logits_equal_transformers_qwen3_moe_when_no_token_is_over_capacity(tie):
    model = tiny_model(tie_embeddings=tie).eval()  # capacity factor 4 = E: every slot fits
    hf = qwen3_moe_from(model)
    ids = torch.randint(0, 64, (3, 16), generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        ours, theirs = model({"input_ids": ids})["logits"], hf(input_ids=ids).logits
    # float32 relative 1e-5; near-zero logits get the same slack relative to the logits' mean size
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * float(theirs.abs().mean()))


def test_meta_device_model_has_no_storage_and_longer_inputs_are_refused():
    model = build_moe_model(**tiny_config(use_meta_device=True))
    assert all(p.device.type == "meta" for p in model.parameters())
    with pytest.raises(ValueError, match="input has 17 tokens but the model's max_seq_len is 16"):
        tiny_model()({"input_ids": torch.zeros(1, 17, dtype=torch.long)})


@pytest.mark.parametrize(("overrides", "message"), [
    ({"moe_top_k": 5}, r"moe_top_k \(5\) cannot exceed moe_num_experts \(4\)"),
    ({"n_heads": 5}, r"d_model \(32\) must be divisible by n_heads \(5\)"),
    ({"n_kv_heads": 3}, r"n_heads \(4\) must be divisible by n_kv_heads \(3\)"),
    ({"moe_overflow_policy": "reroute"}, "'drop' or 'residual'"),
])
def test_config_errors_name_the_fields(overrides, message):
    with pytest.raises(ValueError, match=message):
        MoEModelConfig.model_validate(tiny_config(**overrides))


def test_config_defaults_are_the_references():
    config = MoEModelConfig.model_validate(dict(vocab_size=8, max_seq_len=4, d_model=8, n_heads=2, n_kv_heads=1,
                                                num_layers=1, d_ff=8))
    assert (config.moe_num_experts, config.moe_top_k, config.moe_d_ff) == (128, 8, 768)
    assert (config.moe_capacity_factor, config.moe_min_capacity, config.moe_overflow_policy) == (1.25, 4, "residual")
    assert (config.moe_aux_loss_coef, config.moe_z_loss_coef, config.norm_eps, config.rope_base) == \
        (0.001, 0.0, 1e-6, 1e6)
    assert (config.sample_key, config.prediction_key, config.tie_embeddings) == ("input_ids", "logits", False)


# -- the loss and the statistics --------------------------------------------------------------------------------------

def test_moe_cross_entropy_adds_every_blocks_auxiliary_loss():
    model = tiny_model()
    loss_fn = MoECrossEntropyLoss(target_key="target_ids", prediction_key="logits", model=model)
    logits = torch.randn(2, 3, 64, generator=torch.Generator().manual_seed(9))
    targets = torch.randint(0, 64, (2, 3), generator=torch.Generator().manual_seed(10))
    model.layers["0"].ffn.last_aux_loss = torch.tensor(0.25)
    model.layers["1"].ffn.last_aux_loss = torch.tensor(0.5)
    batch = InferenceResultBatch(targets={"target_ids": targets}, predictions={"logits": logits})
    expected = F.cross_entropy(logits.view(-1, 64), targets.view(-1)) + 0.75
    assert float(loss_fn(batch)) == pytest.approx(float(expected), rel=1e-6)
    model.layers["1"].ffn.last_aux_loss = None  # a coef of 0
    assert float(loss_fn(batch)) == pytest.approx(float(expected) - 0.5, rel=1e-6)


def test_the_loss_of_pipeline_parts_reads_the_part_with_the_head():
    first, last = tiny_model(), tiny_model()
    first.lm_head, last.token_emb = None, None
    first.layers["0"].ffn.last_aux_loss = torch.tensor(10.0)
    last.layers["1"].ffn.last_aux_loss = torch.tensor(0.5)
    last.layers["0"].ffn.last_aux_loss = None
    loss_fn = MoECrossEntropyLoss(target_key="t", prediction_key="p", model=[first, last])
    logits, targets = torch.zeros(1, 2, 64), torch.zeros(1, 2, dtype=torch.long)
    batch = InferenceResultBatch(targets={"t": targets}, predictions={"p": logits})
    assert float(loss_fn(batch)) == pytest.approx(math.log(64) + 0.5, rel=1e-6)


def test_blocks_record_routing_in_training_only_and_summaries_by_hand():
    model = tiny_model(moe_capacity_factor=0.5, moe_aux_loss_coef=0.01)
    ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(11))
    model.eval()
    with torch.no_grad():
        model({"input_ids": ids})
    assert model.layers["0"].ffn.pop_statistics() is None
    model.train()
    model({"input_ids": ids})
    model({"input_ids": ids})
    counts, losses = model.layers["0"].ffn.pop_statistics()
    assert counts[0].sum() == 2 * 16 * 2  # two forwards of 16 tokens, 2 slots each
    # the same batch twice: each forward keeps min(demand, capacity max(ceil(0.5 x 16 / 4), 1) = 2) per expert
    assert counts[1].tolist() == [2 * min(d / 2, 2) for d in counts[0].tolist()]
    assert losses[2] == 2
    assert model.layers["0"].ffn.pop_statistics() is None  # read once
    # summaries of made-up sums: layer 0 demand 6, 2, 0, 0 (kept 4, 2, 0, 0) over 2 forwards with balance sum 0.3;
    # layer 1 did not run (a block of another pipeline stage)
    counts = torch.tensor([[[6.0, 2, 0, 0], [4, 2, 0, 0]], [[0, 0, 0, 0], [0, 0, 0, 0]]])
    losses = torch.tensor([[0.3, 0.1, 2.0], [0.0, 0.0, 0.0]])
    metrics = summarize(counts, losses, z_loss=True)
    assert metrics["moe aux loss"] == pytest.approx(0.2)  # (0.3 + 0.1) / 2 forwards
    assert metrics["moe z loss"] == pytest.approx(0.05)
    assert metrics["moe over capacity"] == pytest.approx(2 / 8)
    assert metrics["moe load max/mean"] == pytest.approx(6 / 2)
    assert metrics["moe tokens per expert"] == [[6, 2, 0, 0], [0, 0, 0, 0]]
    assert summarize(counts, torch.zeros(2, 3)) == {}


def test_the_references_gpt2_initializer_draws_only_the_head_of_the_moe_model():
    """The reference's MoE configs initialize model/moe with model_initialization/composed of model_type gpt2,
    whose names match the head alone (lm_head.weight): everything else keeps its own default init."""
    from modalities.models.initialization.composed import composed_initializer, initialize_model

    model = tiny_model()
    initialize_model(model, composed_initializer("gpt2", "scaled", mean=0.0, std=0.02, num_layers=2, seed=1))
    # 64 x 32 = 2048 draws of N(0, 0.02): the sample std is within 10% of it (about 6 standard errors)
    assert float(model.lm_head.weight.std()) == pytest.approx(0.02, rel=0.1)
    assert float(model.token_emb.weight.std()) == pytest.approx(1.0, rel=0.1)  # nn.Embedding's N(0, 1)
    assert torch.equal(model.layers["0"].attn.q_norm.weight, torch.ones(8))
    # kaiming_uniform(a=sqrt(5)) of a (4, 16, 32) weight: U(-b, b), b = 1 / sqrt(fan_in 16 x 32)
    bound = 1 / math.sqrt(16 * 32)
    w1 = model.layers["1"].ffn.experts.w1
    assert float(w1.abs().max()) <= bound and float(w1.abs().max()) > 0.9 * bound
