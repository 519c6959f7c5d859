"""Forward+backward tokens/s of model/gpt2 against transformers' GPT-2 of the same size, in the same run.

Both models get the same architecture (absolute positions, exact gelu, LayerNorm, tied embeddings, biases),
the same weights (copied with modalities.interop.hf_gpt2) and the same batches; timings alternate between the
two so that machine load affects both alike. Prints tokens/s of each and ours/HF.

    python tools/bench/bench_gpt2_vs_hf.py [--n-layer 4 --n-embd 256 --n-head 4 --seq 256 --batch 4 --steps 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from modalities.interop.hf_gpt2 import load_hf_gpt2_weights
from modalities.models.gpt2.config import GPT2LLMConfig
from modalities.models.gpt2.model import build_gpt2_model


def build_models(args: argparse.Namespace) -> tuple[torch.nn.Module, torch.nn.Module]:
    norm = {"norm_type": "layer_norm", "config": {"normalized_shape": args.n_embd, "eps": 1e-5}}
    config = GPT2LLMConfig(
        sample_key="input_ids",
        prediction_key="logits",
        poe_type="ABSOLUTE",
        sequence_length=args.seq,
        vocab_size=args.vocab,
        n_layer=args.n_layer,
        n_head_q=args.n_head,
        n_head_kv=args.n_head,
        n_embd=args.n_embd,
        ffn_hidden=4 * args.n_embd,
        dropout=0.0,
        bias=True,
        attention_config={"qkv_transforms": []},
        attention_implementation=args.attention,
        activation_type="gelu",
        attention_norm_config=norm,
        ffn_norm_config=norm,
        lm_head_norm_config=norm,
        use_weight_tying=True,
        seed=0,
    )
    ours = build_gpt2_model(**{name: getattr(config, name) for name in GPT2LLMConfig.model_fields})
    hf = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=args.vocab,
            n_positions=args.seq,
            n_embd=args.n_embd,
            n_layer=args.n_layer,
            n_head=args.n_head,
            activation_function="gelu",
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=None,
            eos_token_id=None,
        )
    )
    load_hf_gpt2_weights(ours, hf)
    return ours.train(), hf.train()


def step_seconds(run_step, batch: torch.Tensor) -> float:
    start = time.perf_counter()
    run_step(batch)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=256)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--attention", default="pytorch_flash", choices=["manual", "pytorch_flash"])
    args = parser.parse_args()

    ours, hf = build_models(args)
    batches = [torch.randint(0, args.vocab, (args.batch, args.seq)) for _ in range(args.steps + args.warmup)]

    def ours_step(ids: torch.Tensor) -> None:
        ours({"input_ids": ids})["logits"].float().logsumexp(-1).mean().backward()
        ours.zero_grad(set_to_none=True)

    def hf_step(ids: torch.Tensor) -> None:
        hf(input_ids=ids).logits.float().logsumexp(-1).mean().backward()
        hf.zero_grad(set_to_none=True)

    times: dict[str, list[float]] = {"ours": [], "hf": []}
    for i, ids in enumerate(batches):
        pair = (("ours", ours_step), ("hf", hf_step)) if i % 2 == 0 else (("hf", hf_step), ("ours", ours_step))
        for name, run_step in pair:
            seconds = step_seconds(run_step, ids)
            if i >= args.warmup:
                times[name].append(seconds)

    tokens = args.batch * args.seq
    ours_tps = tokens / statistics.median(times["ours"])
    hf_tps = tokens / statistics.median(times["hf"])
    print(
        f"GPT-2 L={args.n_layer} d={args.n_embd} heads={args.n_head} T={args.seq} vocab={args.vocab} "
        f"batch={args.batch} "
        f"attention={args.attention} threads={torch.get_num_threads()}"
    )
    print(f"model/gpt2:        {ours_tps:10.0f} tokens/s (median of {args.steps} forward+backward steps)")
    print(f"transformers GPT2: {hf_tps:10.0f} tokens/s")
    print(f"ratio ours/HF:     {ours_tps / hf_tps:10.3f}")


if __name__ == "__main__":
    main()
