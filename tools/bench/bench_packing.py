"""Packing throughput against its ceiling: the tokenizer's own batch encoding of the same texts on the same cores.

    python tools/bench/bench_packing.py [--num-cpus 2] [--megabytes 8]

The corpus is the shipped sample, repeated (with each copy's documents numbered) to the requested size. The
ceiling is `tokenizers.Tokenizer.encode_batch_fast` over the texts already in memory, in batches of the
packer's batch size, with the tokenizer's thread pool set to --num-cpus threads. The packer does the whole job on --num-cpus worker processes: reading
the JSONL through the raw index, parsing JSON, encoding, appending EOD and writing the .pbin.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def make_corpus(path: Path, megabytes: float) -> list[str]:
    sample = [json.loads(line)["text"] for line in (REPO / "data/sample/corpus.jsonl").open(encoding="utf-8")]
    texts, size, copy = [], 0, 0
    with path.open("w", encoding="utf-8") as f:
        while size < megabytes * 1e6:
            for i, text in enumerate(sample):
                text = f"Copy {copy}, part {i}. {text}"
                line = json.dumps({"text": text}) + "\n"
                f.write(line)
                texts.append(text)
                size += len(line)
            copy += 1
    return texts


CEILING = """
import json, sys, time
from tokenizers import Tokenizer
tokenizer = Tokenizer.from_file(sys.argv[1])
texts = [json.loads(line)["text"] for line in open(sys.argv[2], encoding="utf-8")]
batch = int(sys.argv[3])
began = time.perf_counter()
tokens = 0
for start in range(0, len(texts), batch):
    tokens += sum(len(e.ids) for e in tokenizer.encode_batch_fast(texts[start : start + batch], add_special_tokens=True))
print(json.dumps({"tokens": tokens + len(texts), "seconds": time.perf_counter() - began}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--megabytes", type=float, default=8.0)
    parser.add_argument("--batch-size", type=int, default=250, help="processing_batch_size of the packer")
    parser.add_argument("--rounds", type=int, default=3, help="alternating measurements; the best of each counts")
    args = parser.parse_args()

    from modalities.data.packing import pack_encoded_data
    from modalities.data.raw_index import create_raw_index
    from modalities.data.tokenizers import PreTrainedHFTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        texts = make_corpus(corpus, args.megabytes)
        create_raw_index(corpus)
        tokenizer_json = REPO / "data/sample/tokenizer/tokenizer.json"

        # The ceiling runs in a fresh process, so its thread pool has the size we set. Ceiling and packer take
        # turns, so that load from other processes on the machine hits both alike; the best of each counts.
        env = {**os.environ, "RAYON_NUM_THREADS": str(args.num_cpus), "TOKENIZERS_PARALLELISM": "true"}
        tokenizer = PreTrainedHFTokenizer(str(REPO / "data/sample/tokenizer"))
        ceiling, best = None, None
        for _ in range(args.rounds):
            run = json.loads(
                subprocess.run(
                    [sys.executable, "-c", CEILING, str(tokenizer_json), str(corpus), str(args.batch_size)],
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            ceiling = run if ceiling is None or run["seconds"] < ceiling["seconds"] else ceiling
            result = pack_encoded_data(
                corpus,
                tokenizer,
                "<|endoftext|>",
                dst_path=Path(tmp) / "out.pbin",
                num_cpus=args.num_cpus,
                processing_batch_size=args.batch_size,
                overwrite=True,
            )
            best = result if best is None or result.seconds < best.seconds else best
        assert best.num_tokens == ceiling["tokens"], "the packer and the ceiling must encode the same tokens"

    ceiling_rate = ceiling["tokens"] / ceiling["seconds"]
    packing_rate = best.num_tokens / best.seconds
    print(f"corpus: {len(texts)} documents, {args.megabytes:.0f} MB, {best.num_tokens:,} tokens; {args.num_cpus} cpus")
    print(f"ceiling (encode_batch_fast, {args.num_cpus} threads): {ceiling_rate:12,.0f} tokens/s")
    print(
        f"pack_encoded_data ({args.num_cpus} workers, end to end): {packing_rate:12,.0f} tokens/s "
        f"({best.num_documents / best.seconds:,.0f} documents/s)"
    )
    print(f"ratio packing / ceiling: {packing_rate / ceiling_rate:.2f}")


if __name__ == "__main__":
    main()
