"""Run under torchrun (2 or 4 ranks): model/gpt2 split by model/gpt2_tp against the same model whole, for
several architectures. Prints one JSON line per case on rank 0; tests/training/test_tensor_parallel.py reads it."""

import copy
import json

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor

from modalities.models.gpt2.tensor_parallel import TensorParallelError, tensor_parallelize_gpt2
from modalities.training.distributed import exit_process
from tests.models.helpers import build_gpt2

ROPE = {"qkv_transforms": [{"type_hint": "RotaryTransform",
                            "config": {"n_embd": 32, "n_head": 4, "seq_length_dim": -2, "base_freq": 10000}}]}
CASES = {
    "gelu_absolute_tied": {},
    "gelu_absolute_untied": {"use_weight_tying": False},
    "rope_gqa_swiglu_sdpa": {"poe_type": "NOPE", "attention_config": ROPE, "n_head_kv": 2, "activation_type": "swiglu",
                             "attention_implementation": "pytorch_flash", "bias": False},
}

dist.init_process_group("gloo")
mesh = init_device_mesh("cpu", (dist.get_world_size(),), mesh_dim_names=("tp",))
for name, overrides in CASES.items():
    whole = build_gpt2(n_layer=2, n_embd=32, sequence_length=16, vocab_size=64, **overrides)
    split = tensor_parallelize_gpt2(copy.deepcopy(whole), mesh)
    ids = torch.randint(0, 64, (3, 16), generator=torch.Generator().manual_seed(1))
    expected, got = whole(ids), split(ids)
    (expected * torch.linspace(-1, 1, 64)).sum().backward()
    (got * torch.linspace(-1, 1, 64)).sum().backward()
    # Relative to the largest gradient of the model: some true gradients are zero (a key bias shifts every score of
    # a query alike, which softmax ignores) and their computed values are rounding noise on both sides.
    worst_grad, scale, sharded = 0.0, 0.0, 0
    for (_, a), (_, b) in zip(whole.named_parameters(), split.named_parameters()):
        grad = b.grad.full_tensor() if isinstance(b.grad, DTensor) else b.grad
        worst_grad = max(worst_grad, (a.grad - grad).abs().max().item())
        scale = max(scale, a.grad.abs().max().item())
        sharded += isinstance(b, DTensor) and any(p.is_shard() for p in b.placements)
    record = {
        "case": name,
        "logits_max_diff_over_largest_logit": ((expected - got).abs().max() / expected.abs().max()).item(),
        "grad_max_diff_over_largest_grad": worst_grad / scale,
        "parameters": [sum(1 for _ in whole.parameters()), sum(1 for _ in split.parameters())],
        "sharded_parameters": sharded,
        "local_heads": [split.transformer.h["0"].attn.n_head_q, split.transformer.h["0"].attn.n_head_kv],
    }
    if dist.get_rank() == 0:
        print("TPCHECK " + json.dumps(record), flush=True)
# loss parallelism: the head keeps its vocabulary shard, and the loss computed on the shards under torch's
# loss_parallel equals the whole model's cross-entropy, gradients too
from modalities.batch import InferenceResultBatch  # noqa: E402
from modalities.optim.loss import CLMCrossEntropyLoss  # noqa: E402
from modalities.training.step_inputs import loss_parallel_context, plain_tensor  # noqa: E402

whole = build_gpt2(n_layer=2, n_embd=32, sequence_length=16, vocab_size=64, use_weight_tying=False)
mesh.loss_parallel = True
split = tensor_parallelize_gpt2(copy.deepcopy(whole), mesh)
ids = torch.randint(0, 64, (3, 16), generator=torch.Generator().manual_seed(2))
targets = torch.randint(0, 64, (3, 16), generator=torch.Generator().manual_seed(3))
targets[0, :5] = -100  # ignored positions count in neither sum nor mean
loss_fn = CLMCrossEntropyLoss(target_key="t", prediction_key="logits")
expected = loss_fn(InferenceResultBatch(targets={"t": targets}, predictions=whole({"input_ids": ids})))
expected.backward()
with loss_parallel_context(True):
    logits = split({"input_ids": ids})["logits"]
    loss = loss_fn(InferenceResultBatch(targets={"t": targets}, predictions={"logits": logits}))
    loss.backward()
head_grad = split.transformer.lm_head.weight.grad.full_tensor()
record = {"case": "loss_parallel", "logits_placements": [str(p) for p in logits.placements],
          "local_vocab": logits.to_local().shape[-1], "loss_relative_diff": abs(plain_tensor(loss).item() - expected.item()) / abs(expected.item()),
          "head_grad_diff_over_largest": ((head_grad - whole.transformer.lm_head.weight.grad).abs().max()
                                          / whole.transformer.lm_head.weight.grad.abs().max()).item()}
if dist.get_rank() == 0:
    print("TPCHECK " + json.dumps(record), flush=True)
# a model the degree cannot split is refused before anything is changed
odd = build_gpt2(n_layer=1, n_embd=24, n_head_q=3, n_head_kv=3, sequence_length=16, vocab_size=64)
try:
    tensor_parallelize_gpt2(odd, mesh)
    refused = None
except TensorParallelError as e:
    refused = str(e)
if dist.get_rank() == 0:
    print("TPCHECK " + json.dumps({"case": "refused", "message": refused,
                                   "heads_left": odd.transformer.h["0"].attn.n_head_q}), flush=True)
dist.barrier()
exit_process(0)  # finalization can abort while gloo threads release their last tensors: see exit_process
