"""Mixture of experts (model/moe): its experts against a per-expert loop, and its training speed against the dense
model of the same active size, each side measured in the same run.

(a) experts: the routed SwiGLU experts of one block as model/moe runs them (``run_experts`` with the model's
    backend, ``auto`` by default: torch's grouped GEMM where it runs, else padded batched matmul or the loop by
    the counts, see modalities/models/moe/experts.py) and each backend that runs here (grouped_mm, padded_bmm),
    against a Python loop with one matmul per expert (the reference's way), on the same tokens sorted by the
    model's own routing (``route``: softmax, top-k, no slot dropped). Forward + backward, median time per call,
    the methods taking turns; ``--clock process`` times this process's CPU time instead of the wall's (steadier
    on a shared CPU; with OMP_NUM_THREADS=1). Outputs and the gradients of tokens and weights are checked against
    the loop's (float32: relative 1e-5 of their norm; bfloat16: 2e-2) and whether they are bit-equal is printed;
    the last line of each routing is model/moe's time over the fastest other method's. Two routings:
    near-balanced (random router logits) and skewed (one expert chosen by about half the slots, which the padded
    form pays for).
(b) training: tokens/s of a model/moe against a model/gpt2 of the same active parameters per token (the same
    attention: GQA with q/k RMSNorm and RoPE, RMSNorm, untied head; SwiGLU of top_k x moe_d_ff hidden units where
    the MoE has top_k of its experts), each trained by the same hand-written loop (forward, cross-entropy plus
    the MoE's auxiliary losses as loss/moe_cross_entropy adds them, backward, AdamW) on the same in-memory
    batches, alternating repetitions. The capacity keeps every slot by default (factor = experts), so both do
    the same matmul work per token; --capacity-factor sets another. With --ranks N each side runs on N ranks
    (torchrun, gloo on CPU, NCCL on CUDA) with FSDP2 over every rank (data parallel, no expert parallelism);
    --dtype bf16 trains as the training configs do, FSDP2 with bf16 parameters over fp32 masters (torchrun, also
    on one rank), so that model/moe's experts see bf16 tokens and take the grouped GEMM where the GPU has it.

    python tools/bench/bench_moe.py                                    # CPU, fp32, one process
    python tools/bench/bench_moe.py --ranks 2                          # (b) on 2 CPU ranks
    python tools/bench/bench_moe.py --device cuda --dtype bf16 --size gpu

Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch

from modalities.batch import InferenceResultBatch
from modalities.models.gpt2.config import swiglu_hidden_dim
from modalities.models.gpt2.model import build_gpt2_model
from modalities.models.moe.experts import BACKENDS, choose_backend, experts_looped, run_experts
from modalities.models.moe.loss import MoECrossEntropyLoss
from modalities.models.moe.model import build_moe_model, inactive_parameters_per_token
from modalities.models.moe.routing import route
from modalities.optim.loss import CLMCrossEntropyLoss

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# (a) tokens, experts, top_k, d_model, moe_d_ff; (b) layers, d_model, heads, kv heads, experts, top_k, moe_d_ff,
# vocabulary, sequence length, micro-batch
SIZES = {
    "cpu": {"experts": (4096, 8, 2, 256, 512), "model": (4, 256, 8, 4, 8, 2, 256, 2048, 128, 8)},
    "gpu": {"experts": (16384, 64, 8, 1024, 768), "model": (8, 1024, 16, 4, 32, 4, 768, 32768, 2048, 8)},
}
TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 2e-2}  # relative to the norm of the loop's result


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- (a) the experts -----------------------------------------------------------------------------------------------


def routed_tokens(tokens: int, experts: int, top_k: int, d_model: int, skewed: bool, device, dtype, generator):
    """Tokens sorted by expert and the rows per expert, as model/moe's routing gives them (no slot dropped)."""
    logits = torch.randn(tokens, experts, generator=generator)
    if skewed:
        logits[:, 0] += 2.0  # expert 0 becomes the first choice of about half the tokens
    routing = route(logits, top_k, capacity=tokens)
    x = torch.randn(tokens, d_model, generator=generator)[routing.token_ids]
    return x.to(device, dtype), routing.counts.to(device)


def expert_weights(experts: int, d_model: int, d_ff: int, device, dtype, generator) -> list[torch.Tensor]:
    shapes = ((experts, d_ff, d_model), (experts, d_ff, d_model), (experts, d_model, d_ff))
    return [(torch.randn(shape, generator=generator) / shape[-1] ** 0.5).to(device, dtype) for shape in shapes]


def forward_backward(implementation, x, counts, weights):
    """One forward and backward; returns the output and the gradients of x, w1, w2, w3."""
    leaves = [t.detach().requires_grad_() for t in (x, *weights)]
    out = implementation(leaves[0], counts, *leaves[1:])
    out.float().pow(2).sum().backward()
    return out.detach(), [t.grad for t in leaves]


def elapsed_seconds(call, device: torch.device, clock: str) -> float:
    synchronize(device)
    timer = time.process_time if clock == "process" else time.perf_counter
    start = timer()
    call()
    synchronize(device)
    return timer() - start


def median_seconds_each(calls: dict, device: torch.device, repeats: int, clock: str, warmup: int = 1) -> dict:
    """Median seconds per call of each entry, the entries taking turns (a load that drifts hits them alike)."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            times[name].append(elapsed_seconds(call, device, clock))
    return {name: statistics.median(values) for name, values in times.items()}


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual.float() - expected.float()).norm() / expected.float().norm().clamp_min(1e-30))


def runs_here(implementation, x, counts, weights) -> bool:
    try:
        with torch.no_grad():
            implementation(x, counts, *weights)
        return True
    except RuntimeError:  # torch._grouped_mm where this torch has no kernel, or not for these sizes
        return False


def bench_experts(args, device: torch.device, dtype: torch.dtype) -> bool:
    """model/moe's experts (--experts-backend) and each backend against the per-expert loop; True when all of them
    gave the loop's outputs and gradients within the tolerance."""
    tokens, experts, top_k, d_model, d_ff = args.experts_shape or SIZES[args.size]["experts"]
    print(f"(a) experts of one block: {tokens} tokens, top-{top_k} of {experts} experts (SwiGLU {d_model} -> {d_ff} "
          f"-> {d_model}), forward + backward, {device.type} {args.dtype}, median of {args.repeats} "
          f"({'process CPU' if args.clock == 'process' else 'wall'} time), the methods taking turns")
    generator = torch.Generator().manual_seed(0)
    weights = expert_weights(experts, d_model, d_ff, device, dtype, generator)
    all_equal = True
    for skewed in (False, True):
        x, counts = routed_tokens(tokens, experts, top_k, d_model, skewed, device, dtype, generator)
        resolved, _ = choose_backend(x, counts, weights[0], weights[2])
        backend = args.experts_backend
        ours_name = f"model/moe ({backend}{f': {resolved}' if backend == 'auto' else ''})"
        implementations = {"per-expert loop": experts_looped}
        implementations.update({name: partial(run_experts, backend=name) for name in BACKENDS if name != "looped"
                                and runs_here(partial(run_experts, backend=name), x, counts, weights)})
        implementations[ours_name] = partial(run_experts, backend=backend)
        calls = {name: partial(forward_backward, implementation, x, counts, weights)
                 for name, implementation in implementations.items()}
        results = {name: call() for name, call in calls.items()}
        loop_out, loop_grads = results["per-expert loop"]
        seconds = median_seconds_each(calls, device, args.repeats, args.clock)
        routing = "skewed" if skewed else "balanced"
        print(f"  {routing} routing, rows per expert {counts.min().item()}..{counts.max().item()}:")
        for name, (out, grads) in results.items():
            errors = [relative_error(out, loop_out)] + [relative_error(g, e) for g, e in zip(grads, loop_grads)]
            equal = max(errors) <= TOLERANCE[dtype]
            bitwise = torch.equal(out, loop_out) and all(torch.equal(g, e) for g, e in zip(grads, loop_grads))
            all_equal &= equal
            ratio = seconds["per-expert loop"] / seconds[name]
            print(f"    {name:34} {seconds[name] * 1e3:10.2f} ms, loop / this {ratio:5.2f}x; outputs and gradients "
                  f"{'equal' if equal else 'DIFFER'} (max relative error {max(errors):.1e}, bit-equal: "
                  f"{'yes' if bitwise else 'no'})", flush=True)
        best = min((name for name in seconds if name != ours_name), key=seconds.get)
        print(f"    {ours_name} / the fastest other ({best}): {seconds[ours_name] / seconds[best]:.2f}", flush=True)
    return all_equal


# -- (b) training: MoE against the dense model of the same active size -------------------------------------------


def model_configs(args) -> tuple[dict, dict]:
    """(model/moe fields, model/gpt2 fields) of the same attention and active parameters per token."""
    layers, d_model, heads, kv_heads, experts, top_k, moe_d_ff, vocab, seq, _ = SIZES[args.size]["model"]
    moe = {"vocab_size": vocab, "max_seq_len": seq, "d_model": d_model, "n_heads": heads, "n_kv_heads": kv_heads,
           "num_layers": layers, "d_ff": top_k * moe_d_ff, "norm_eps": 1e-6, "rope_base": 10000.0,
           "moe_num_experts": experts, "moe_top_k": top_k, "moe_d_ff": moe_d_ff,
           "moe_capacity_factor": args.capacity_factor or float(experts), "moe_aux_loss_coef": 0.001,
           "moe_experts_backend": args.experts_backend, "seed": 0}
    hidden = top_k * moe_d_ff  # SwiGLU hidden units = int(2 ffn_hidden / 3), rounded up to a multiple of 8
    assert hidden % 8 == 0 and swiglu_hidden_dim(3 * hidden // 2, 8) == hidden
    head_dim = d_model // heads
    rms = {"norm_type": "pytorch_rms_norm", "config": {"normalized_shape": d_model, "eps": 1e-6}}
    rope = {"type_hint": "RotaryTransform", "config": {"n_embd": d_model, "n_head": heads, "seq_length_dim": -2,
                                                       "base_freq": 10000}}
    qk_norm = {"norm_type": "pytorch_rms_norm", "config": {"normalized_shape": head_dim, "eps": 1e-6}}
    dense = {"sample_key": "input_ids", "prediction_key": "logits", "poe_type": "NOPE", "sequence_length": seq,
             "vocab_size": vocab, "n_layer": layers, "n_head_q": heads, "n_head_kv": kv_heads, "n_embd": d_model,
             "ffn_hidden": 3 * hidden // 2, "enforce_swiglu_hidden_dim_multiple_of": 8, "dropout": 0.0,
             "bias": False, "activation_type": "swiglu", "attention_implementation": "pytorch_flash",
             "attention_config": {"qkv_transforms": [rope], "qk_norm_config": qk_norm},
             "attention_norm_config": rms, "ffn_norm_config": rms, "lm_head_norm_config": rms,
             "use_weight_tying": False, "seed": 0}
    return moe, dense


def active_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(parameters a token uses, all parameters): the framework's count (the experts a token skips left out)."""
    total = sum(p.numel() for p in model.parameters())
    return total - inactive_parameters_per_token(model), total


def batches(args, count: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    *_, vocab, seq, batch_size = SIZES[args.size]["model"]
    generator = torch.Generator().manual_seed(1 + int(os.environ.get("RANK", "0")))  # each rank its own data
    tokens = torch.randint(0, vocab, (count, batch_size, seq + 1), generator=generator)
    return [(t[:, :-1].contiguous(), t[:, 1:].contiguous()) for t in tokens]


def build_side(args, kind: str, device: torch.device, mesh):
    moe, dense = model_configs(args)
    with device:
        model = build_moe_model(**moe) if kind == "moe" else build_gpt2_model(**dense)
    if mesh is not None:  # as training configs do it: FSDP2 per block, bf16 parameters over fp32 masters
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        policy = MixedPrecisionPolicy(param_dtype=DTYPES[args.dtype], reduce_dtype=torch.float32)
        blocks = model.layers.values() if kind == "moe" else model.transformer.h.values()
        for block in blocks:
            fully_shard(block, mesh=mesh, mp_policy=policy)
        fully_shard(model, mesh=mesh, mp_policy=policy)
    loss_fn = (MoECrossEntropyLoss("target_ids", "logits", model) if kind == "moe"
               else CLMCrossEntropyLoss("target_ids", "logits"))
    return model, loss_fn


def train_tokens_per_second(args, kind: str, device: torch.device, mesh) -> float:
    """Tokens/s of this rank's steps after --warmup, by the hand-written loop."""
    model, loss_fn = build_side(args, kind, device, mesh)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    data = [(i.to(device), t.to(device)) for i, t in batches(args)]
    model.train()
    ends = []
    for step in range(args.warmup + args.steps):
        ids, targets = data[step % len(data)]
        logits = model({"input_ids": ids})["logits"]
        loss = loss_fn(InferenceResultBatch(targets={"target_ids": targets}, predictions={"logits": logits}))
        loss.backward()
        if not torch.isfinite(loss):
            raise RuntimeError(f"{kind}: the loss is not finite at step {step}")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        ends.append(time.perf_counter())
    timed = ends[args.warmup - 1 :]  # the end of the last warm-up step starts the clock
    return (len(timed) - 1) * ids.numel() / (timed[-1] - timed[0])


def run_training(args, device: torch.device, mesh=None, world: int = 1) -> dict[str, list[float]]:
    """Global tokens/s of each side per repetition, alternating which goes first."""
    results: dict[str, list[float]] = {"dense": [], "moe": []}
    for repetition in range(args.repeats):
        for kind in (("dense", "moe") if repetition % 2 == 0 else ("moe", "dense")):
            results[kind].append(world * train_tokens_per_second(args, kind, device, mesh))
            if int(os.environ.get("RANK", "0")) == 0:
                print(f"  repetition {repetition + 1}: {kind}: {results[kind][-1]:,.0f} tokens/s", flush=True)
    return results


def training_worker(args) -> None:
    """A torchrun rank of --ranks: FSDP2 over all ranks; rank 0 writes the results to --worker-result."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    local_rank = int(os.environ["LOCAL_RANK"])
    device = torch.device(args.device, local_rank) if args.device == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        mesh = init_device_mesh(device.type, (dist.get_world_size(),))
        # each rank times its own steps; the global rate is the slowest rank's (FSDP2 keeps them in step)
        results = run_training(args, device, mesh, world=dist.get_world_size())
        gathered = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, results)
        if dist.get_rank() == 0:
            slowest = {kind: [min(r[kind][i] for r in gathered) for i in range(args.repeats)] for kind in results}
            Path(args.worker_result).write_text(json.dumps(slowest))
    finally:
        dist.destroy_process_group()


def bench_training(args, device: torch.device) -> None:
    layers, d_model, heads, kv_heads, experts, top_k, moe_d_ff, vocab, seq, batch = SIZES[args.size]["model"]
    moe_fields, _ = model_configs(args)
    (moe_active, moe_total), (dense_active, _) = (active_parameters(build_side(args, kind, torch.device("meta"),
                                                                               None)[0]) for kind in ("moe", "dense"))
    distributed = args.ranks > 1 or args.dtype != "fp32"  # bf16 as training configs have it: FSDP2's mixed precision
    where = (f"{args.ranks} rank{'s' if args.ranks > 1 else ''} (torchrun, FSDP2 data parallel)" if distributed
             else "one process")
    print(f"(b) training: {layers} layers, d_model {d_model}, {heads} query / {kv_heads} key-value heads, vocabulary "
          f"{vocab}, batch {batch} x {seq} tokens per rank, {device.type} {args.dtype}, {where}; {args.warmup} "
          f"warm-up + {args.steps} timed steps, {args.repeats} repetitions\n"
          f"  model/moe: {experts} experts of {moe_d_ff}, top-{top_k}, capacity factor "
          f"{moe_fields['moe_capacity_factor']:g}, {moe_active:,} active parameters per token of {moe_total:,}\n"
          f"  model/gpt2 (dense): SwiGLU of {top_k * moe_d_ff}, {dense_active:,} parameters (the MoE's active ones "
          f"less its routers, {layers} x {d_model} x {experts})", flush=True)
    assert moe_active - dense_active == layers * d_model * experts, (moe_active, dense_active)
    if distributed:
        with tempfile.TemporaryDirectory() as tmp:
            result = Path(tmp) / "result.json"
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       f"--nproc_per_node={args.ranks}", __file__, *sys.argv[1:], "--worker-result", str(result)]
            subprocess.run(command, check=True)
            results = json.loads(result.read_text())
    else:
        results = run_training(args, device)
    dense, moe = statistics.median(results["dense"]), statistics.median(results["moe"])
    print(f"  {'':34} {'tokens/s (median)':>18} {'ratio':>7}\n  {'dense model/gpt2 (same active size)':34} "
          f"{dense:18,.0f} {1.0:7.3f}\n  {'model/moe':34} {moe:18,.0f} {moe / dense:7.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--dtype", choices=list(DTYPES), default="fp32",
                        help="(a) the experts' dtype; (b) FSDP2's param_dtype (fp32 master weights and reductions; "
                        "bf16 runs under torchrun, also with --ranks 1)")
    parser.add_argument("--size", choices=list(SIZES), default=None, help="default: cpu, or gpu with --device cuda")
    parser.add_argument("--only", choices=["experts", "training"], default=None)
    parser.add_argument("--experts-backend", default="auto", choices=["auto", "grouped_mm", "padded_bmm", "looped"],
                        help="model/moe's moe_experts_backend (auto: as the model chooses)")
    parser.add_argument("--experts-shape", default=None, metavar="T,E,K,D,F",
                        type=lambda text: tuple(int(v) for v in text.split(",")),
                        help="(a) tokens, experts, top_k, d_model, moe_d_ff (default: the --size's)")
    parser.add_argument("--capacity-factor", type=float, default=None,
                        help="(b) moe_capacity_factor (default: the number of experts: no slot dropped)")
    parser.add_argument("--repeats", type=int, default=5, help="(a) timed calls; (b) repetitions of each side")
    parser.add_argument("--clock", choices=["wall", "process"], default="wall",
                        help="(a) wall time, or this process's CPU time (CPU only: steadier on a machine shared with "
                        "other work; with one thread, OMP_NUM_THREADS=1, it is the time the work took)")
    parser.add_argument("--steps", type=int, default=10, help="(b) timed training steps per repetition")
    parser.add_argument("--warmup", type=int, default=3, help="(b) steps before the clock starts")
    parser.add_argument("--ranks", type=int, default=1, help="(b) ranks, launched with torchrun")
    parser.add_argument("--worker-result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.size = args.size or ("gpu" if args.device == "cuda" else "cpu")
    if args.device == "cuda" and args.clock == "process":
        parser.error("--clock process measures CPU time: a GPU's work does not show in it; use --clock wall")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    if args.worker_result:
        training_worker(args)
        return 0
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads"
          + (f", {torch.cuda.get_device_name()}" if device.type == "cuda" else ""), flush=True)
    equal = True
    if args.only in (None, "experts"):
        equal = bench_experts(args, device, DTYPES[args.dtype])
    if args.only in (None, "training"):
        bench_training(args, device)
    if not equal:
        print("FAILED: model/moe's experts differ from the per-expert loop beyond the tolerance", file=sys.stderr)
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
