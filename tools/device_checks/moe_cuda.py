"""model/moe on a CUDA device: the grouped-matmul experts (torch._grouped_mm) against the reference's per-expert
loop and the padded bmm, outputs and gradients, and the whole model with the automatic choice. Prints one JSON
line per check and exits 1 if any fails. Run on a machine with a GPU: `python tools/device_checks/moe_cuda.py`."""

from __future__ import annotations

import json
import sys
import time
import warnings

import torch

from modalities.models.moe.experts import grouped_mm_supported, run_experts

failures = []


def report(name: str, ok: bool, **values) -> None:
    print(json.dumps({"check": name, "ok": bool(ok), **values}), flush=True)
    if not ok:
        failures.append(name)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12))


def experts_against_the_loop(dtype: torch.dtype, counts: list[int], d_model=256, d_ff=512) -> None:
    generator = torch.Generator(device="cuda").manual_seed(0)
    weights = [torch.randn(len(counts), *shape, device="cuda", generator=generator).div(shape[-1] ** 0.5)
               .to(dtype).requires_grad_() for shape in ((d_ff, d_model), (d_ff, d_model), (d_model, d_ff))]
    x = torch.randn(sum(counts), d_model, device="cuda", generator=generator).to(dtype).requires_grad_()
    counts_t = torch.tensor(counts, device="cuda")
    results = {}
    for backend in ("looped", "padded_bmm", "grouped_mm"):
        if backend == "grouped_mm" and not grouped_mm_supported(x, weights[0], weights[2]):
            continue
        out = run_experts(x, counts_t, *weights, backend=backend)
        out.float().pow(2).sum().backward()
        results[backend] = (out.detach(), [t.grad.clone() for t in (x, *weights)])
        for t in (x, *weights):
            t.grad = None
    base_out, base_grads = results.pop("looped")
    # bf16 products summed over 256-512 terms in another order: ~1e-2 relative; float32 ~1e-5
    tolerance = 2e-2 if dtype == torch.bfloat16 else 1e-4
    for backend, (out, grads) in results.items():
        errors = [relative(out, base_out)] + [relative(g, b) for g, b in zip(grads, base_grads)]
        report(f"experts {backend} vs looped {dtype} counts {counts}", max(errors) < tolerance,
               max_relative_error=max(errors))


def timing(backend: str, tokens=8192, experts=64, d_model=1024, d_ff=768, top_k=8) -> float:
    counts = torch.full((experts,), tokens * top_k // experts, device="cuda")
    x = torch.randn(int(counts.sum()), d_model, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    weights = [(torch.randn(experts, *s, device="cuda", dtype=torch.bfloat16) * 0.02).requires_grad_()  # leaves
               for s in ((d_ff, d_model), (d_ff, d_model), (d_model, d_ff))]
    for _ in range(3):
        run_experts(x, counts, *weights, backend=backend).sum().backward()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        run_experts(x, counts, *weights, backend=backend).sum().backward()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / 10


def main() -> int:
    report("environment", torch.cuda.is_available(), torch=torch.__version__,
           device=torch.cuda.get_device_name() if torch.cuda.is_available() else None,
           capability=list(torch.cuda.get_device_capability()) if torch.cuda.is_available() else None,
           has_grouped_mm=hasattr(torch, "_grouped_mm"),
           has_unflatten=hasattr(torch.distributed.device_mesh.DeviceMesh, "_unflatten"))
    if not torch.cuda.is_available():
        return 1
    for dtype in (torch.bfloat16, torch.float32):
        for counts in ([37, 0, 91, 5, 1, 0, 64, 2], [0] * 7 + [40]):
            experts_against_the_loop(dtype, counts)
    try:
        from modalities.models.moe.model import build_moe_model
    except ImportError as e:  # a machine with torch only: the experts' checks stand alone
        report("model (skipped: " + str(e) + ")", True)
        return _timings()
    torch.manual_seed(0)
    config = dict(vocab_size=512, max_seq_len=64, d_model=128, n_heads=8, n_kv_heads=4, num_layers=2, d_ff=256,
                  moe_num_experts=8, moe_top_k=2, moe_d_ff=128, moe_capacity_factor=8.0)
    model = build_moe_model(**config).cuda().to(torch.bfloat16)
    ids = torch.randint(0, 512, (4, 64), device="cuda")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        auto = model({"input_ids": ids})["logits"]
    for block in model.layers.values():
        block.ffn.experts.backend = "padded_bmm"
    padded = model({"input_ids": ids})["logits"]
    report("model auto (grouped_mm) vs padded_bmm, bf16", relative(auto, padded) < 2e-2,
           relative_error=relative(auto, padded), warnings=[str(w.message) for w in caught])
    return _timings()


def _timings() -> int:
    times = {backend: timing(backend) for backend in ("looped", "padded_bmm", "grouped_mm")}
    report("timing fwd+bwd, 8192 tokens, top-8 of 64 experts, 1024 x 768, bf16 (s)", True, **times,
           looped_over_grouped=times["looped"] / times["grouped_mm"])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
