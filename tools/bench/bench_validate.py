"""Cold-start time of `modalities validate` against `python -c pass` and against the reference CLI's start,
and its growth with config size.

    python tools/bench/bench_validate.py [--repeat 5] [--config configs/quickstart.yaml]
        [--reference-python /path/to/reference-venv/bin/python [--reference-pythonpath DIR]]

Prints the median wall time of each command, the ratio to the `python -c pass` baseline measured in the same
run, and for generated configs of 500 to 5,000 components the time per component (flat = linear growth).

With --reference-python (a venv with the reference Modalities installed), `modalities --help` of the reference
(the console script beside that python) and our `validate` of the config run in turns, round after round, and
the ratio of their medians is printed: how many of our whole validations (run contract included) fit in the
reference's start. --reference-pythonpath puts a folder first on the reference's path (e.g. a transformers 4.x
its version imports from, when the venv got transformers 5). Each command runs once before timing, with
bytecode writing allowed, so both start from compiled modules as an installed package does.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_once(cmd: list[str], env: dict | None = None) -> float:
    return run_measured(cmd, env)[0]


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, cwd=REPO, env=env or ENV, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stderr.decode()}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def timed(cmd: list[str], repeat: int) -> float:
    run_once(cmd)  # bytecode written, files in the page cache
    return statistics.median(run_once(cmd) for _ in range(repeat))


def against_reference(ours: list[str], reference_python: Path, pythonpath: str | None, repeat: int) -> None:
    script = reference_python.parent / "modalities"
    if not script.is_file():
        raise SystemExit(f"{script}: no reference `modalities` console script beside --reference-python")
    reference_env = {k: v for k, v in ENV.items() if k != "PYTHONPATH"}
    if pythonpath:
        reference_env["PYTHONPATH"] = pythonpath
    reference = [str(script), "--help"]
    run_once(ours)
    run_once(reference, reference_env)
    our_runs, reference_runs = [], []
    for _ in range(repeat):  # in turns, so both see the same load on a shared machine
        our_runs.append(run_measured(ours))
        reference_runs.append(run_measured(reference, reference_env))
    load = os.getloadavg()[0]
    for label, index in (("wall", 0), ("CPU (user+system)", 1)):
        mine = statistics.median(run[index] for run in our_runs)
        theirs = statistics.median(run[index] for run in reference_runs)
        print(f"{label:>18}: reference `modalities --help` {theirs * 1000:8.1f} ms, our `{' '.join(ours[2:])}` "
              f"{mine * 1000:7.1f} ms: {theirs / mine:5.1f}x   (medians of {repeat}, in turns)")
    print(f"load average (1 min) at the end: {load:.2f}")


def generated_config(n: int) -> str:
    """n components: chains of number conversions that reference each other, plus settings interpolation."""
    lines = ["settings:", "  seq: 16", "  batch: 2"]
    for i in range(n):
        lines += [
            f"c{i}:",
            "  component_key: number_conversion",
            "  variant_key: num_tokens_from_num_steps",
            "  config:",
            f"    num_steps: {'{instance_key: c%d, pass_type: BY_REFERENCE}' % (i - 1) if i % 10 else 1}",
            "    dp_degree: 1",
            "    local_micro_batch_size: ${settings.batch}",
            "    sequence_length: ${settings.seq}",
            "    gradient_accumulation_steps: 1",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--config", default=None, help="a real config to time (default: a small generated one)")
    parser.add_argument("--reference-python", type=Path, default=None, help="python of a venv with the reference")
    parser.add_argument("--reference-pythonpath", default=None, help="PYTHONPATH for the reference's run")
    parser.add_argument("--reference-only", action="store_true", help="only the comparison with the reference")
    args = parser.parse_args()
    py = sys.executable
    if args.reference_python is not None:
        config = args.config or "configs/quickstart.yaml"
        against_reference([py, "-m", "modalities", "validate", config], args.reference_python,
                          args.reference_pythonpath, max(args.repeat, 5))
        if args.reference_only:
            return
    baseline = timed([py, "-c", "pass"], args.repeat)
    print(f"python -c pass:                       {baseline * 1000:7.1f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(args.config) if args.config else Path(tmp) / "small.yaml"
        if not args.config:
            small.write_text(generated_config(10))
        t = timed([py, "-m", "modalities", "validate", str(small)], args.repeat)
        print(f"modalities validate {small.name:<18}{t * 1000:7.1f} ms   ratio to python -c pass: {t / baseline:.1f}x")
        t_help = timed([py, "-m", "modalities", "--help"], args.repeat)
        print(f"modalities --help:                    {t_help * 1000:7.1f} ms   ratio: {t_help / baseline:.1f}x")
        print("\ncomponents   validate (s)   ms per component")
        for n in (500, 1000, 2000, 5000):
            path = Path(tmp) / f"gen{n}.yaml"
            path.write_text(generated_config(n))
            t = timed([py, "-m", "modalities", "validate", str(path)], max(1, args.repeat // 2))
            print(f"{n:>10}   {t:12.2f}   {(t - t_help) / n * 1000:16.3f}")


if __name__ == "__main__":
    main()
