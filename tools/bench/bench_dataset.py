"""Dataset + collate throughput against plain numpy memmap slicing of the same file.

    python tools/bench/bench_dataset.py [--tokens 20000000] [--sequence-length 1024] [--batch-size 8]

Both sides read the same shuffled sample order from a .pbin of random 2-byte tokens and produce int64 torch
tensors of shape (batch, sequence_length + 1). The baseline slices an np.memmap of the token section directly
and stacks the slices; ours goes through dataset/packed_mem_map_dataset_continuous and
collate_fn/gpt_2_llm_collator (which also splits inputs and targets into a DatasetBatch), and then the whole
data_loader/default with num_workers=0.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def best_rates(functions: list, num_samples: int, rounds: int) -> list[float]:
    """Samples/s of each function, best of ``rounds``; the functions take turns so machine load hits all alike."""
    best = [float("inf")] * len(functions)
    for _ in range(rounds):
        for k, fn in enumerate(functions):
            began = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - began)
    return [num_samples / seconds for seconds in best]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=20_000_000)
    parser.add_argument("--sequence-length", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from modalities.data.collate import GPT2LLMCollateFn
    from modalities.data.datasets import PackedMemMapDatasetContinuous
    from modalities.data.loaders import LLMDataLoader
    from modalities.data.pbin import HEADER_SIZE, PackedFileWriter
    from modalities.data.samplers import ResumableDistributedSampler, batch_sampler

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.pbin"
        writer = PackedFileWriter(path, 2)
        tokens = np.random.default_rng(0).integers(0, 50_000, size=args.tokens, dtype=np.int64)
        writer.write_tokens(tokens, [args.tokens])
        writer.close()

        seq, bs = args.sequence_length, args.batch_size
        dataset = PackedMemMapDatasetContinuous(path, sequence_length=seq, sample_key="input_ids")
        sampler = ResumableDistributedSampler(dataset, rank=0, num_replicas=1, shuffle=True, seed=0)
        order = list(sampler)
        batches = [order[i : i + bs] for i in range(0, len(order) - bs + 1, bs)]
        num_samples = len(batches) * bs
        collate = GPT2LLMCollateFn("input_ids", "target_ids")
        memmap = np.memmap(path, dtype="<u2", mode="r", offset=HEADER_SIZE, shape=(args.tokens,))

        def baseline() -> None:
            for batch in batches:
                torch.from_numpy(np.stack([memmap[i * seq : i * seq + seq + 1] for i in batch]).astype(np.int64))

        def ours() -> None:
            for batch in batches:
                collate([dataset[i] for i in batch])

        loader = LLMDataLoader("bench", dataset, batch_sampler(sampler, bs), collate, num_workers=0, pin_memory=False)

        def ours_loader() -> None:
            for _ in loader:
                pass

        baseline_rate, ours_rate, loader_rate = best_rates([baseline, ours, ours_loader], num_samples, args.rounds)

    print(f"{num_samples:,} samples of {seq + 1} tokens in batches of {bs}")
    print(f"numpy memmap slicing + stack (baseline): {baseline_rate:12,.0f} samples/s")
    print(
        f"dataset + gpt_2_llm_collator:            {ours_rate:12,.0f} samples/s  ratio {ours_rate / baseline_rate:.2f}"
    )
    print(
        f"data_loader/default (num_workers=0):     {loader_rate:12,.0f} samples/s  ratio {loader_rate / baseline_rate:.2f}"
    )


if __name__ == "__main__":
    main()
