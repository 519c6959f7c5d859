"""Packing end to end against the tokenizer alone and against the reference Modalities packer.

    python tools/bench/bench_packing.py [--workdir DIR] [--num-cpus 2] [--batch-size 64] [--rounds 3]
                                        [--reference-python /path/to/venv/bin/python]
                                        [--reference-pythonpath DIR]
                                        [--gpt2-ranks /path/to/gpt2.tiktoken]

The corpus and tokenizer are made by tools/bench/packing_corpus.py (20,000 JSONL documents, 36 MB; a GPT-2-like
byte-level BPE of 50,257 ids trained on it, or with --gpt2-ranks GPT-2's own tokenizer, each in a transformers
folder), once, under --workdir. Rows, all in this run:

- reference: the reference's ``modalities data pack_encoded_data`` (its console script beside
  --reference-python), when given; its output is compared with ours byte for byte;
- ours, end to end: ``python -m modalities data pack_encoded_data`` as a fresh process (interpreter, imports,
  tokenizer, the engine's choice, JSON, encoding, .pbin), with ``tokenizer_engine`` auto (tiktoken where it gives
  the tokenizer's ids, see modalities/data/bpe_engine.py) and huggingface; the first run fills the packing cache
  and is reported as "cold"; every run's output is compared byte for byte;
- start-up: the auto command on a one-document corpus (everything but the per-document work);
- pack_encoded_data called in this process: tiktoken, or `tokenizers`, batches encoded side by side on threads,
  or `tokenizers` forced onto worker processes (the way custom tokenizers and SentencePiece before 0.2.2 go);
- SentencePiece (a 32,000-piece BPE trained on the corpus's first 2,000 documents): pack_encoded_data in this
  process on threads (sentencepiece 0.2.2 and later release the GIL) and forced onto worker processes;
- the tokenizer alone: ``tokenizers`` ``encode_batch`` and ``encode_batch_fast`` over the texts already in
  memory, in batches of --batch-size, one batch at a time on the tokenizer's pool of --num-cpus threads, and
  ``encode_batch_fast`` with --num-cpus batches side by side on Python threads (the packer's way), in a fresh
  process, timing the encoding only; and tiktoken alone, as the packer builds it: --num-cpus batches side by side
  (the packer's way), and tiktoken's own ``encode_batch`` (a pool of --num-cpus threads for each batch).

Rows take turns round by round so that load from elsewhere on the machine hits all alike; the best of each
counts. Printed: wall times, tokens/s, the engine and its version, and the ratios the packing issues set (ours vs
reference; ours vs the tokenizer alone; ours vs tiktoken alone).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

ALONE = """
import json, os, sys, threading, time
from tokenizers import Tokenizer
from modalities.data.tokenizers import PreTrainedHFTokenizer
# the backend exactly as the packer gets it (transformers' configuration of the folder)
tokenizer_json = PreTrainedHFTokenizer(sys.argv[1]).batch_encoder().tokenizer_json
tokenizer = Tokenizer.from_str(tokenizer_json)
texts = [json.loads(line)["text"] for line in open(sys.argv[2], encoding="utf-8")]
batch, method, threads = int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
batches = [texts[start : start + batch] for start in range(0, len(texts), batch)]
if method.startswith("tiktoken"):  # tiktoken as the packer builds it (its spec from the packing cache)
    from modalities.data.bpe_engine import TiktokenBatchEncoder, cached_tiktoken_spec
    from modalities.data.tokenizers import HFBatchEncoder
    encoder = TiktokenBatchEncoder(cached_tiktoken_spec(tokenizer_json), HFBatchEncoder(tokenizer_json))
    matched = set(encoder.spec.matched_in_text)
    if method.endswith("side by side"):
        count = lambda texts_of_batch: int(encoder.encode_flat(texts_of_batch)[1].sum())
    else:  # tiktoken's own pool of threads, one batch at a time
        count = lambda texts_of_batch: sum(map(len, encoder.encoding.encode_batch(
            texts_of_batch, num_threads=threads, allowed_special=matched, disallowed_special=())))
else:
    encode = getattr(tokenizer, method.split()[0])
    count = lambda texts_of_batch: sum(len(e.ids) for e in encode(texts_of_batch, add_special_tokens=True))
counts = [0] * threads
if method.endswith(" side by side"):  # batches on Python threads, each encoded serially (the packer's way)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    def work(i):
        for texts_of_batch in batches[i::threads]:
            counts[i] += count(texts_of_batch)
    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
else:  # one batch at a time on the encoder's own thread pool
    began = time.perf_counter()
    for texts_of_batch in batches:
        counts[0] += count(texts_of_batch)
print(json.dumps({"tokens": sum(counts) + len(texts), "seconds": time.perf_counter() - began}))
"""


from modalities.data.tokenizers import SPBatchEncoder  # after the repository is on the path


class HoldsTheGil(SPBatchEncoder):
    releases_gil = False

    @staticmethod
    def releases_gil_here() -> bool:
        from modalities.data.tokenizers import sentencepiece_releases_gil

        return sentencepiece_releases_gil()


class ProcessesOnly:
    """The cached tokenizer with its encoder declared unable to release the GIL, so pack_encoded_data spreads
    it over worker processes (the way taken for custom tokenizers and SentencePiece before 0.2.2): threads
    against processes."""

    def __init__(self, tokenizer):
        self.tokenizer, self.vocab_size = tokenizer, tokenizer.vocab_size

    def get_token_id(self, token):
        return self.tokenizer.get_token_id(token)

    def batch_encoder(self):
        from modalities.data.tokenizers import HFBatchEncoder

        encoder = HFBatchEncoder(self.tokenizer.batch_encoder().tokenizer_json)
        encoder.releases_gil = False
        return encoder


class SentencePieceInProcesses(ProcessesOnly):
    """The same for a SentencePiece tokenizer (as before sentencepiece 0.2.2, which held the GIL)."""

    def batch_encoder(self):
        return HoldsTheGil(self.tokenizer.model_proto)


def sentencepiece_in_process(paths: dict, work: Path, num_cpus: int, batch_size: int, processes: bool) -> float:
    from modalities.data.packing import pack_encoded_data
    from modalities.data.tokenizers import PreTrainedSPTokenizer

    tokenizer = PreTrainedSPTokenizer(str(paths["sentencepiece"]))
    result = pack_encoded_data(paths["corpus"], SentencePieceInProcesses(tokenizer) if processes else tokenizer,
                               "<eod>", dst_path=work / f"sp_{'processes' if processes else 'threads'}.pbin",
                               index_path=paths["index"], num_cpus=num_cpus, processing_batch_size=batch_size,
                               overwrite=True)
    on_threads = result.parallelism.startswith("one process, the tokenizer")
    assert on_threads == (not processes and HoldsTheGil.releases_gil_here()), result.parallelism
    return result.seconds


def in_process(paths: dict, work: Path, num_cpus: int, batch_size: int, way: str) -> float:
    """pack_encoded_data here, ``way``: tiktoken (on threads), tokenizers (on threads) or processes (tokenizers)."""
    from modalities.data.packing import pack_encoded_data
    from modalities.data.prepared_tokenizer import hf_tokenizer_for_packing

    tokenizer = hf_tokenizer_for_packing(str(paths["tokenizer"]))
    engine = "tiktoken" if way == "tiktoken" else "huggingface"
    result = pack_encoded_data(paths["corpus"], ProcessesOnly(tokenizer) if way == "processes" else tokenizer,
                               "<|endoftext|>", dst_path=work / f"{way}.pbin", index_path=paths["index"],
                               num_cpus=num_cpus, processing_batch_size=batch_size, overwrite=True,
                               tokenizer_engine=engine)
    assert result.engine.startswith("tiktoken") == (way == "tiktoken"), result.engine
    return result.seconds


def pack_config(path: Path, corpus: Path, index: Path, tokenizer: Path, destination: Path, num_cpus: int,
                batch_size: int, engine: str | None = None) -> Path:
    """A pack config; ``engine``: its tokenizer_engine (None: not set, as in the reference's configs)."""
    path.write_text(
        f"""settings:
  src_path: {corpus}
  dst_path: {destination}
  index_path: {index}
  jq_pattern: .text
  num_cpus: {num_cpus}
  eod_token: <|endoftext|>
  processing_batch_size: {batch_size}
  raw_samples_queue_size: 300
  processed_samples_queue_size: 300
{f"  tokenizer_engine: {engine}{chr(10)}" if engine else ""}tokenizer:
  component_key: tokenizer
  variant_key: pretrained_hf_tokenizer
  config:
    pretrained_model_name_or_path: {tokenizer}
    padding: false
    truncation: false
"""
    )
    return path


def timed(command: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, all threads and child processes) of ``command``."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return seconds, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "modalities-bench-packing")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64, help="processing_batch_size")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reference-python", type=Path, default=None,
                        help="python of an environment with the reference Modalities installed")
    parser.add_argument("--reference-pythonpath", default=None,
                        help="PYTHONPATH for the reference (e.g. a `pip install --target` folder with transformers<5, "
                             "which modalities 0.5.0 needs: it imports tokenization_llama_fast, gone in transformers 5)")
    parser.add_argument("--gpt2-ranks", type=Path, default=None,
                        help="GPT-2's rank table (whisper/assets/gpt2.tiktoken from `pip download openai-whisper "
                             "--no-deps --no-binary :all:`): pack with GPT-2's own tokenizer, not the trained one")
    args = parser.parse_args()

    from packing_corpus import prepare, sentencepiece_model

    from modalities.data.pbin import PackedFile
    from modalities.data.raw_index import create_raw_index

    paths = prepare(args.workdir, gpt2_ranks=args.gpt2_ranks)
    paths["sentencepiece"] = sentencepiece_model(args.workdir)
    work = args.workdir / "runs"
    work.mkdir(exist_ok=True)
    one_doc = work / "one.jsonl"
    with paths["corpus"].open(encoding="utf-8") as f:
        one_doc.write_text(f.readline(), encoding="utf-8")
    create_raw_index(one_doc, overwrite=True)

    ours_cfg = pack_config(work / "ours.yaml", paths["corpus"], paths["index"], paths["tokenizer"], work / "ours.pbin",
                           args.num_cpus, args.batch_size)
    ours_hf_cfg = pack_config(work / "ours_hf.yaml", paths["corpus"], paths["index"], paths["tokenizer"],
                              work / "ours_hf.pbin", args.num_cpus, args.batch_size, engine="huggingface")
    start_cfg = pack_config(work / "startup.yaml", one_doc, one_doc.with_suffix(".idx"), paths["tokenizer"],
                            work / "startup.pbin", args.num_cpus, args.batch_size)
    ref_cfg = pack_config(work / "ref.yaml", paths["corpus"], paths["index"], paths["tokenizer"], work / "ref.pbin",
                          args.num_cpus, args.batch_size)
    env = {**os.environ, "MODALITIES_CACHE_DIR": str(work / "cache"), "RAYON_NUM_THREADS": str(args.num_cpus),
           "TOKENIZERS_PARALLELISM": "true"}
    ours = [sys.executable, "-m", "modalities", "data", "pack_encoded_data"]
    rows: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}  # CPU seconds of the fresh-process rows, run by run

    def measure(name: str, command: list[str], destination: Path | None) -> None:
        if destination is not None:
            destination.unlink(missing_ok=True)
        # The reference imports its own package: a PYTHONPATH naming this checkout would give it ours.
        own_env = env
        if name == "reference":
            own_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
            if args.reference_pythonpath:
                own_env["PYTHONPATH"] = args.reference_pythonpath
        seconds, cpu_seconds = timed(command, own_env)
        rows.setdefault(name, []).append(seconds)
        cpu.setdefault(name, []).append(cpu_seconds)

    import shutil

    shutil.rmtree(work / "cache", ignore_errors=True)
    measure("ours, cold tokenizer cache", [*ours, str(ours_cfg), "--overwrite"], None)
    os.environ["MODALITIES_CACHE_DIR"] = env["MODALITIES_CACHE_DIR"]  # the in-process rows use the warm cache too
    reference = None
    if args.reference_python is not None:
        reference = args.reference_python.parent / "modalities"
        if not reference.is_file():
            raise SystemExit(f"{reference}: no reference `modalities` console script beside --reference-python")
    alone: dict[str, dict] = {}
    for _ in range(args.rounds):
        if reference is not None:
            measure("reference", [str(reference), "data", "pack_encoded_data", str(ref_cfg)], work / "ref.pbin")
        measure("ours", [*ours, str(ours_cfg), "--overwrite"], None)
        measure("ours, tokenizer_engine huggingface", [*ours, str(ours_hf_cfg), "--overwrite"], None)
        measure("ours, start-up (1 document)", [*ours, str(start_cfg), "--overwrite"], None)
        for way, name in (("tiktoken", "tiktoken, threads"), ("tokenizers", "tokenizers, threads"),
                          ("processes", "tokenizers, 2 worker processes")):
            rows.setdefault(f"pack_encoded_data in-process, {name}", []).append(
                in_process(paths, work, args.num_cpus, args.batch_size, way))
        for processes in (False, True):
            name = f"SentencePiece 32k BPE in-process, {'2 worker processes' if processes else 'threads'}"
            rows.setdefault(name, []).append(
                sentencepiece_in_process(paths, work, args.num_cpus, args.batch_size, processes))
        for method in ("encode_batch", "encode_batch_fast", "encode_batch_fast side by side", "tiktoken encode_batch",
                       "tiktoken side by side"):
            done = subprocess.run(
                [sys.executable, "-c", ALONE, str(paths["tokenizer"]), str(paths["corpus"]), str(args.batch_size),
                 method, str(args.num_cpus)], env=env, capture_output=True, text=True, check=True, cwd=REPO)
            run = json.loads(done.stdout)
            if method not in alone or run["seconds"] < alone[method]["seconds"]:
                alone[method] = run

    packed = PackedFile(work / "ours.pbin")
    tokens = packed.num_tokens
    assert all(run["tokens"] == tokens for run in alone.values()), "the packer and the tokenizer encode alike"
    identical = None
    if reference is not None:
        identical = (work / "ref.pbin").read_bytes() == (work / "ours.pbin").read_bytes()

    best = {name: min(times) for name, times in rows.items()}
    print(f"corpus: {packed.num_documents:,} documents, {paths['corpus'].stat().st_size / 1e6:.1f} MB, "
          f"{tokens:,} tokens; tokenizer: {paths['tokenizer']}; batches of {args.batch_size}, "
          f"{args.num_cpus} cpus; best of {args.rounds}")
    print(f"{'':58} {'seconds':>8} {'tokens/s':>12} {'cpu s':>7}")
    for name, seconds in best.items():
        rate = "" if "start-up" in name or name.startswith("SentencePiece") else f"{tokens / seconds:12,.0f}"
        cpu_seconds = f"{cpu[name][rows[name].index(seconds)]:7.2f}" if name in cpu else ""
        print(f"{name:58} {seconds:8.2f} {rate:>12} {cpu_seconds:>7}")
    for method, run in alone.items():
        label = f"tiktoken alone, {method[9:]}" if method.startswith("tiktoken") else f"tokenizer alone, {method}"
        print(f"{label:58} {run['seconds']:8.2f} {tokens / run['seconds']:12,.0f}")
    ours_bytes = (work / "ours.pbin").read_bytes()
    for other in ("ours_hf", "tiktoken", "tokenizers", "processes"):
        assert (work / f"{other}.pbin").read_bytes() == ours_bytes, f"{other}.pbin differs from ours.pbin"
    assert (work / "sp_threads.pbin").read_bytes() == (work / "sp_processes.pbin").read_bytes()
    sp_threads, sp_processes = (best[f"SentencePiece 32k BPE in-process, {way}"]
                                for way in ("threads", "2 worker processes"))
    print(f"SentencePiece: threads (sentencepiece {'releases' if HoldsTheGil.releases_gil_here() else 'holds'} the "
          f"GIL) vs worker processes: {sp_processes / sp_threads:.2f}x faster; output byte-identical: True")
    from modalities.data.pbin_info import read_info

    engine = read_info(work / "ours.pbin")["engine"]
    print(f"engine of ours: {engine['name']} {engine['version']} ({engine['reason']}); the packed files of every "
          "row are byte-identical to ours")
    if "reference" in best:
        print(f"ours vs reference: {best['reference'] / best['ours']:.2f}x faster; output byte-identical: {identical}")
        print(f"ours with tokenizer_engine huggingface vs reference: "
              f"{best['reference'] / best['ours, tokenizer_engine huggingface']:.2f}x")
    for method, run in alone.items():
        label = f"tiktoken alone ({method[9:]})" if method.startswith("tiktoken") else f"tokenizer alone ({method})"
        print(f"ours end to end / {label}: "
              f"{run['seconds'] / best['ours']:.2f} of its speed")


if __name__ == "__main__":
    main()
