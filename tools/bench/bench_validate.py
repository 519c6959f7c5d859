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

Composition (--only compose): a base with a 3-level chain of experiment files (`extends:`) against the same
config as one file: `modalities validate exp3.yaml` (exp3 -> exp2 -> exp1 -> the quick start) against
`modalities validate flat.yaml` (the same merged config written as one file), as processes and in-process
(compile_file), alternating the two; prints the ratio composed / flat.
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


# Three experiment files, each on the one before, as a user would stack them: a longer run with another schedule,
# a bigger model, another optimizer setting with a subscriber switched and a component deleted.
CHAIN = {
    "exp1.yaml": """extends: base.yaml
settings:
  intervals: {checkpointing_interval_in_steps: 20, evaluation_interval_in_steps: 20}
  training_target: {num_target_steps: 60}
lr_scheduler:
  variant_key: linear_warmup_cosine_annealing_lr
  config:
    optimizer: {instance_key: optimizer, pass_type: BY_REFERENCE}
    warmup_steps: 6
    total_steps: ${settings.training_target.num_target_steps}
""",
    "exp2.yaml": """extends: exp1.yaml
model_raw:
  config: {n_layer: 4, n_embd: 256, n_head_q: 8, n_head_kv: 8, ffn_hidden: 1024, dropout: 0.1}
""",
    "exp3.yaml": """extends: exp2.yaml
optimizer:
  config: {lr: 1.0e-3, weight_decay: 0.05}
evaluation_subscriber: {variant_key: dummy, config: {}}
mfu_calculator: !delete
""",
}


def composition_files(folder: Path) -> tuple[Path, Path]:
    """(exp3.yaml of the chain, flat.yaml: the merged config as one file), written into ``folder``."""
    from modalities.config.compose import compose_files
    from modalities.config.dump import dump_yaml

    from modalities.config.load import load_text

    quickstart = (REPO / "configs" / "quickstart.yaml").read_text()
    data = REPO / "data" / "sample"
    quickstart = quickstart.replace("${modalities_env:config_folder_path}/../data/sample", str(data))
    # The base as dump_yaml writes it, like flat.yaml: the two differ in content only, not in style or comments
    (folder / "base.yaml").write_text(dump_yaml(load_text(quickstart).values))
    for name, text in CHAIN.items():
        (folder / name).write_text(text)
    flat = folder / "flat.yaml"
    flat.write_text(dump_yaml(compose_files(folder / "exp3.yaml").values))
    return folder / "exp3.yaml", flat


def in_process(config: Path, repeat: int) -> float:
    """Median CPU time of this process for compile_file (CPU, not wall: on a shared machine the wall time
    of a few milliseconds is mostly other processes' time)."""
    from modalities.config.compiler import compile_file

    times = []
    for _ in range(repeat):
        start = time.process_time()
        compiled = compile_file(config, experiment_id="bench")
        times.append(time.process_time() - start)
        if not compiled.ok:
            raise SystemExit(f"{config} does not validate: {[d.message for d in compiled.diagnostics][:3]}")
    return statistics.median(times)


def child_cpu(cmd: list[str]) -> float:
    """User + system CPU time of one run of ``cmd`` as a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(cmd, capture_output=True, cwd=REPO)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stderr.decode()}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def bench_composition(repeat: int) -> None:
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        composed, flat = composition_files(Path(tmp))
        from modalities.config.compiler import compile_file

        resolved = [compile_file(path, experiment_id="bench").document.values for path in (composed, flat)]
        for values in resolved:
            values["settings"].pop("config_file_path")  # where each is: the one difference
        assert resolved[0] == resolved[1], "the flat file is another config"
        rounds = max(3, repeat)
        wall, cpu, inside = ({"composed": [], "flat": []} for _ in range(3))
        for _ in range(rounds):  # alternating, so drift of a shared machine reaches both alike
            for name, path in (("composed", composed), ("flat", flat)):
                wall[name].append(timed([py, "-m", "modalities", "validate", str(path)], 1))
                cpu[name].append(child_cpu([py, "-m", "modalities", "validate", str(path)]))
                inside[name].append(in_process(path, 5))
        print("\nbase + 3-level extends chain against the same config as one file "
              f"(median of {rounds} rounds, alternating):")
        for label, table in (("validate, wall time", wall), ("validate, CPU time", cpu),
                             ("compile_file, CPU time", inside)):
            c, f = statistics.median(table["composed"]), statistics.median(table["flat"])
            print(f"  {label:24} composed {c * 1000:7.1f} ms   flat {f * 1000:7.1f} ms   ratio {c / f:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--config", default=None, help="a real config to time (default: a small generated one)")
    parser.add_argument("--reference-python", type=Path, default=None, help="python of a venv with the reference")
    parser.add_argument("--reference-pythonpath", default=None, help="PYTHONPATH for the reference's run")
    parser.add_argument("--reference-only", action="store_true", help="only the comparison with the reference")
    parser.add_argument("--only", choices=("compose",), default=None, help="time only the composition")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    if args.only == "compose":
        bench_composition(args.repeat)
        return
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
    bench_composition(args.repeat)


if __name__ == "__main__":
    main()
