"""Cold-start time of `modalities validate` against `python -c pass`, and its growth with config size.

    python tools/bench/bench_validate.py [--repeat 5] [--config configs/quickstart.yaml]

Prints the median wall time of each command, the ratio to the `python -c pass` baseline measured in the same
run, and for generated configs of 500 to 5,000 components the time per component (flat = linear growth).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def timed(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = subprocess.run(cmd, capture_output=True, cwd=REPO)
        times.append(time.perf_counter() - start)
        if result.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stderr.decode()}")
    return statistics.median(times)


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
    args = parser.parse_args()
    py = sys.executable
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
