"""Run under torchrun (2 or 4 ranks): model/gpt2 and model/moe on a batch split over the ranks' ``cp`` mesh (ring
attention) against the same model on the whole batch, for several architectures. Prints one JSON line per case on rank 0;
tests/training/test_context_parallel.py reads it."""

import copy
import json

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh

from modalities.batch import InferenceResultBatch
from modalities.optim.loss import CLMCrossEntropyLoss
from modalities.training.context_parallel import ContextParallel
from modalities.training.distributed import exit_process
from modalities.training.step_inputs import model_inputs
from tests.models.helpers import build_gpt2
from tests.models.test_moe import tiny_model

ROPE = {"qkv_transforms": [{"type_hint": "RotaryTransform",
                            "config": {"n_embd": 32, "n_head": 4, "seq_length_dim": -2, "base_freq": 10000}}]}
ROPE_GQA_SWIGLU = {"poe_type": "NOPE", "attention_config": ROPE, "n_head_kv": 2, "activation_type": "swiglu",
                   "bias": False}
# case -> (model overrides, load balancer: headtail as torch balances causal attention, or None: contiguous)
CASES = {
    "gelu_absolute_tied": ({}, "headtail"),
    "rope_gqa_swiglu": (ROPE_GQA_SWIGLU, "headtail"),
    "rope_gqa_swiglu_contiguous": (ROPE_GQA_SWIGLU, None),
    # model/moe (grouped-query attention, q/k norms, RoPE): routing is per token, so the split batch routes each
    # token as the whole does where no expert is full (capacity factor = experts); without auxiliary losses, which
    # are per rank (over the tokens it holds), the loss is the whole batch's
    "moe": ({"moe_capacity_factor": 4.0, "moe_aux_loss_coef": 0.0}, "headtail"),
}


def build(name, overrides):
    if name == "moe":
        return tiny_model(max_seq_len=16, **overrides)
    return build_gpt2(n_layer=2, n_embd=32, sequence_length=16, vocab_size=64,
                      attention_implementation="pytorch_flash", **overrides)


class Batch:
    def __init__(self, samples, targets):
        self.samples, self.targets = samples, targets


dist.init_process_group("gloo")
degree = dist.get_world_size()
mesh = init_device_mesh("cpu", (degree,), mesh_dim_names=("cp",))
loss_fn = CLMCrossEntropyLoss(target_key="target_ids", prediction_key="logits")
for name, (overrides, load_balancer) in CASES.items():
    context_parallel = ContextParallel(mesh, load_balancer)
    whole = build(name, overrides)
    split = copy.deepcopy(whole)
    ids = torch.randint(0, 64, (3, 16), generator=torch.Generator().manual_seed(1))
    expected_logits = whole({"input_ids": ids})["logits"]
    # samples and targets as a collator makes them: two views of one block of tokens
    block = torch.cat([ids, torch.randint(0, 64, (3, 1), generator=torch.Generator().manual_seed(2))], dim=1)
    batch = Batch({"input_ids": block[:, :-1]}, {"target_ids": block[:, 1:]})
    targets = block[:, 1:].clone()
    expected_loss = loss_fn(InferenceResultBatch(targets={"target_ids": targets},
                                                 predictions={"logits": expected_logits}))
    expected_loss.backward()
    with model_inputs(batch, context_parallel) as (inputs, held_targets):
        held_positions = inputs["position_ids"][0].tolist()
        held_tokens = inputs["input_ids"].shape[1]
        logits = split(inputs)["logits"]
        loss = loss_fn(InferenceResultBatch(targets=held_targets, predictions={"logits": logits}))
        loss.backward()
    # put every rank's logits back at the positions its tokens hold
    gathered = [torch.empty_like(logits) for _ in range(degree)]
    dist.all_gather(gathered, logits.detach().contiguous())
    gathered_positions = [None] * degree
    dist.all_gather_object(gathered_positions, held_positions)
    whole_logits = torch.empty_like(expected_logits)
    for rank_logits, rank_positions in zip(gathered, gathered_positions):
        whole_logits[:, rank_positions] = rank_logits
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)
    mean_loss /= degree
    worst_grad, scale = 0.0, 0.0
    for (_, a), (_, b) in zip(whole.named_parameters(), split.named_parameters()):
        grad = b.grad.clone()
        dist.all_reduce(grad)
        grad /= degree  # what FSDP2's reduction over dp_shard x cp gives
        worst_grad = max(worst_grad, (a.grad - grad).abs().max().item())
        scale = max(scale, a.grad.abs().max().item())
    positions = gathered_positions
    record = {
        "case": name,
        "held_tokens": held_tokens,
        "positions": positions,
        "batch_untouched": torch.equal(batch.samples["input_ids"], ids) and torch.equal(batch.targets["target_ids"],
                                                                                        targets),
        "logits_max_diff_over_largest_logit": ((whole_logits - expected_logits).abs().max()
                                               / expected_logits.abs().max()).item(),
        "loss_relative_diff": abs(mean_loss.item() - expected_loss.item()) / abs(expected_loss.item()),
        "grad_max_diff_over_largest_grad": worst_grad / scale,
    }
    if dist.get_rank() == 0:
        print("CPCHECK " + json.dumps(record), flush=True)
exit_process(0)
