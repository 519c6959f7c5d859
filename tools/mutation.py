"""Single-point mutation testing: does a test fail when one line of our code is wrong?

    python tools/mutation.py AREA [AREA ...] [--max-per-file N] [--seed S] [--jobs J] [--list]
    python tools/mutation.py --file modalities/config/overrides.py --tests tests/config/test_overrides.py

For each source file of an area, every mutation point is found in its syntax tree (a comparison flipped or made
strict, an arithmetic operator swapped, an integer constant moved by one, a boolean constant negated, a slice
bound shifted, an ``and``/``or`` swapped, a ``not`` dropped, a statement that records state (an assignment, an
augmented assignment, a call made for its effect) replaced by ``pass``, a ``return`` of a value made to return
None). Up to --max-per-file of them are drawn (seeded), each applied alone to a copy of the repository in a
temporary folder, and the area's tests run there (with ``-x``: the first failure kills the mutant). CLI and
torchrun subprocess tests see the mutated copy, because every test finds the repository from its own path and
puts it on PYTHONPATH. A mutant the tests do not notice "survives"; one whose tests run past the timeout is
counted as killed (a hang is noticed) but listed apart.

Each source file is tested by the test files that exercise it (AREAS below), so a mutant costs seconds, not the
whole suite. Prints one line per mutant and a score per area; --json writes the results. docs/testing.md records
the scores.
Equivalent mutants (a change that cannot alter behaviour, e.g. ``<`` -> ``<=`` where equality is impossible) do
survive; they are listed so that a reader can tell them from gaps.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_CONFIG_CONTRACTS = ["spans", "diagnostics", "load", "compose", "overrides", "resolve", "graph", "validate", "build",
                     "compiler"]

# area -> {source file: the tests that exercise it}
AREAS: dict[str, dict[str, list[str]]] = {
    # the contract tables first (tests/config/test_contract_*.py: cheap, and most mutants fail there; -x stops at the
    # first failure): the file's own, then the others, which exercise it through the stages that call it
    "compiler": {
        source: [f"tests/config/test_contract_{name}.py"]
        + [f"tests/config/test_contract_{other}.py" for other in _CONFIG_CONTRACTS if other != name]
        + tests
        for source, name, tests in [
            ("modalities/config/spans.py", "spans", ["tests/config/test_load.py"]),
            ("modalities/config/diagnostics.py", "diagnostics", ["tests/config/test_hostile_configs.py",
                                                                 "tests/config/test_cli.py"]),
            ("modalities/config/load.py", "load", ["tests/config/test_load.py",
                                                   "tests/config/test_hostile_configs.py"]),
            ("modalities/config/yaml11.py", "load", ["tests/config/test_yaml11.py", "tests/config/test_load.py"]),
            ("modalities/config/compose.py", "compose", ["tests/config/test_compose.py"]),
            ("modalities/config/overrides.py", "overrides", ["tests/config/test_overrides.py",
                                                             "tests/config/test_resolve.py",
                                                             "tests/config/test_cli.py"]),
            ("modalities/config/resolve.py", "resolve", ["tests/config/test_resolve.py",
                                                         "tests/config/test_hostile_configs.py"]),
            ("modalities/config/graph.py", "graph", ["tests/config/test_graph_validate_build.py",
                                                     "tests/config/test_cli.py",
                                                     "tests/config/test_provenance_and_diff.py"]),
            ("modalities/config/validate.py", "validate", ["tests/config/test_graph_validate_build.py",
                                                           "tests/config/test_cli.py", "tests/config/test_overrides.py",
                                                           "tests/training/test_run_contract.py",
                                                           "tests/models/test_norms_hf_mfu.py"]),
            ("modalities/config/build.py", "build", ["tests/config/test_graph_validate_build.py",
                                                     "tests/config/test_library_usage.py"]),
            ("modalities/config/compiler.py", "compiler", ["tests/config/test_compose.py",
                                                           "tests/config/test_graph_validate_build.py"]),
            ("modalities/config/provenance.py", "compiler", ["tests/config/test_provenance_and_diff.py"]),
        ]
    },
    "data": {
        # the contract tables first: cheap, and most mutants fail there (-x stops at the first failure)
        "modalities/data/samplers.py": ["tests/data/test_contracts_samplers.py", "tests/data/test_samplers.py",
                                        "tests/data/test_contracts_loaders.py", "tests/data/test_loaders.py"],
        "modalities/data/loaders.py": ["tests/data/test_contracts_loaders.py", "tests/data/test_loaders.py"],
        "modalities/data/datasets.py": ["tests/data/test_contracts_datasets.py", "tests/data/test_datasets.py",
                                        "tests/data/test_loaders.py"],
        "modalities/data/pbin.py": ["tests/data/test_contracts_pbin.py", "tests/data/test_pbin.py",
                                    "tests/data/test_pbin_info.py"],
        "modalities/data/pbin_header.py": ["tests/data/test_contracts_pbin.py", "tests/data/test_contracts_datasets.py",
                                           "tests/data/test_datasets.py", "tests/data/test_pbin_info.py"],
        "modalities/data/safe_pickle.py": ["tests/data/test_contracts_pbin.py", "tests/data/test_pbin.py",
                                           "tests/data/test_raw_index.py"],
        "modalities/data/packing.py": ["tests/data/test_contracts_packing.py", "tests/data/test_packing.py",
                                       "tests/data/test_packing_pipeline.py"],
        "modalities/data/shuffling.py": ["tests/data/test_contracts_files.py", "tests/data/test_pbin_info.py",
                                         "tests/compat/test_data_tools.py"],
        "modalities/data/raw_index.py": ["tests/data/test_contracts_files.py", "tests/data/test_raw_index.py",
                                         "tests/data/test_contracts_datasets.py"],
        "modalities/data/jq_pattern.py": ["tests/data/test_contracts_files.py", "tests/data/test_contracts_datasets.py",
                                          "tests/data/test_packing.py"],
        "modalities/data/collate.py": [
            "tests/data/test_contracts_files.py", "tests/data/test_loaders.py",
            "tests/compat/test_instruction_tuning.py::test_loss_masking_keeps_only_assistant_turns"],
        "modalities/data/number_conversion.py": ["tests/data/test_contracts_datasets.py", "tests/data/test_datasets.py",
                                                 "tests/data/test_configs.py"],
        "modalities/data/pbin_info.py": ["tests/data/test_contracts_info.py", "tests/data/test_pbin_info.py",
                                         "tests/training/test_run_contract.py"],
        "modalities/data/pbin_stats.py": ["tests/data/test_contracts_info.py", "tests/data/test_pbin_info.py"],
        "modalities/data/tokenizers.py": ["tests/data/test_contracts_tokenizers.py", "tests/data/test_tokenizers.py",
                                          "tests/data/test_packing.py", "tests/data/test_packing_pipeline.py"],
        "modalities/data/prepared_tokenizer.py": ["tests/data/test_contracts_tokenizers.py",
                                                  "tests/data/test_prepared_tokenizer.py"],
        "modalities/data/instruction_tuning.py": [
            "tests/data/test_contracts_instruction_tuning.py",
            "tests/compat/test_instruction_tuning.py::test_prepared_data_is_the_reference_byte_for_byte"],
    },
    "training": {
        "modalities/training/gym.py": ["tests/training/test_against_a_hand_loop.py", "tests/training/test_executor.py",
                                       "tests/training/test_distributed.py"],
        "modalities/models/gpt2/tensor_parallel.py": ["tests/training/test_tensor_parallel.py"],
        "modalities/models/mfu/gpt2_mfu.py": ["tests/models/test_norms_hf_mfu.py"],
        "modalities/models/mfu/peaks.py": ["tests/models/test_norms_hf_mfu.py"],
    },
    "parallel": {
        "modalities/training/pipeline_plan.py": [
            "tests/training/test_pipeline_parallel.py::test_the_reference_configs_are_cut_where_the_reference_cuts_them",
            "tests/training/test_pipeline_parallel.py::test_a_plan_that_cannot_run_is_named",
            "tests/training/test_pipeline_parallel.py::test_validate_refuses_what_the_pipeline_would_refuse"],
        "modalities/training/pipeline.py": ["tests/training/test_pipeline_parallel.py"],
        "modalities/optim/gradient_clipping.py": ["tests/optim/test_gradient_clipping.py",
                                                  "tests/training/test_pipeline_parallel.py"],
        "modalities/training/app_state.py": ["tests/training/test_app_state.py",
                                             "tests/training/test_pipeline_parallel.py"],
        "modalities/training/device_mesh.py": ["tests/training/test_tensor_parallel.py",
                                               "tests/training/test_pipeline_parallel.py",
                                               "tests/training/test_context_parallel.py"],
        "modalities/training/context_parallel.py": ["tests/training/test_context_parallel.py"],
    },
    "checkpointing": {
        "modalities/checkpointing/layout.py": ["tests/training/test_checkpoint_layout.py",
                                               "tests/training/test_checkpoint_safety.py",
                                               "tests/training/test_checkpoint_loading.py"],
        "modalities/checkpointing/saving.py": ["tests/training/test_checkpoint_layout.py",
                                               "tests/training/test_executor.py"],
        "modalities/checkpointing/dcp.py": ["tests/training/test_checkpoint_layout.py",
                                            "tests/training/test_checkpoint_safety.py",
                                            "tests/training/test_checkpoint_loading.py",
                                            "tests/compat/test_reference_checkpoints.py"],
        "modalities/checkpointing/torch_loading.py": ["tests/training/test_torch_loading.py",
                                                      "tests/training/test_checkpoint_safety.py",
                                                      "tests/training/test_checkpoint_loading.py",
                                                      "tests/compat/test_reference_checkpoints.py"],
        "modalities/checkpointing/checksums.py": ["tests/training/test_checkpoint_safety.py"],
    },
}

SWAP_COMPARE = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
                ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
SWAP_BINOP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult, ast.Div: ast.Mult,
              ast.Mod: ast.FloorDiv}


@dataclass
class Mutant:
    file: str
    line: int
    kind: str
    before: str
    after: str = ""
    outcome: str = ""  # killed, survived, timeout, error (the mutant did not import: killed by the interpreter)
    seconds: float = 0.0


def mutation_points(tree: ast.AST) -> list[tuple[int, str]]:
    """Every mutation point of a module, as (index of the node in ast.walk order, kind)."""
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    points: list[tuple[int, str]] = []
    for i, node in enumerate(ast.walk(tree)):
        if isinstance(node, ast.Compare) and type(node.ops[0]) in SWAP_COMPARE:
            points.append((i, "compare"))
        elif isinstance(node, ast.BinOp) and type(node.op) in SWAP_BINOP:
            points.append((i, "arithmetic"))
        elif isinstance(node, ast.BoolOp):
            points.append((i, "and/or"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            points.append((i, "drop not"))
        elif isinstance(node, ast.Constant) and id(node) not in docstrings:
            if isinstance(node.value, bool):
                points.append((i, "negate boolean"))
            elif isinstance(node.value, int):
                points.append((i, "constant +1"))
        elif isinstance(node, ast.Slice) and (node.lower is not None or node.upper is not None):
            points.append((i, "slice bound"))
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) or (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
        ):
            points.append((i, "drop statement"))
        elif isinstance(node, ast.Return) and node.value is not None and not (
            isinstance(node.value, ast.Constant) and node.value.value is None
        ):
            points.append((i, "return None"))
    return points


def _mutate(tree: ast.AST, index: int, kind: str) -> bool:
    """Apply one mutation in place; False when it does not apply after all."""
    parents = {}
    for parent in ast.walk(tree):
        for child in ast.iter_child_nodes(parent):
            parents[id(child)] = parent
    node = list(ast.walk(tree))[index]
    if kind == "compare":
        node.ops[0] = SWAP_COMPARE[type(node.ops[0])]()
    elif kind == "arithmetic":
        node.op = SWAP_BINOP[type(node.op)]()
    elif kind == "and/or":
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif kind == "drop not":
        parent = parents[id(node)]
        for field, value in ast.iter_fields(parent):
            if value is node:
                setattr(parent, field, node.operand)
            elif isinstance(value, list):
                setattr(parent, field, [node.operand if v is node else v for v in value])
    elif kind == "negate boolean":
        node.value = not node.value
    elif kind == "constant +1":
        node.value = node.value + 1
    elif kind == "slice bound":
        bound = node.upper if node.upper is not None else node.lower
        shifted = ast.BinOp(left=bound, op=ast.Add(), right=ast.Constant(1))
        if node.upper is not None:
            node.upper = shifted
        else:
            node.lower = shifted
    elif kind == "drop statement":
        parent = parents[id(node)]
        for field, value in ast.iter_fields(parent):
            if isinstance(value, list) and any(v is node for v in value):
                setattr(parent, field, [ast.Pass() if v is node else v for v in value])
                break
        else:
            return False
    elif kind == "return None":
        node.value = ast.Constant(None)
    ast.fix_missing_locations(tree)
    return True


def enumerate_mutants(path: Path, max_per_file: int, rng: random.Random) -> list[tuple[Mutant, str]]:
    source = path.read_text()
    tree = ast.parse(source)
    points = mutation_points(tree)
    rng.shuffle(points)
    baseline = ast.unparse(tree)
    mutants = []
    for index, kind in points:
        if len(mutants) >= max_per_file:
            break
        mutated_tree = ast.parse(source)
        node = list(ast.walk(mutated_tree))[index]
        line = getattr(node, "lineno", 0)
        if not _mutate(mutated_tree, index, kind):
            continue
        text = ast.unparse(mutated_tree)
        if text == baseline:
            continue
        before = source.splitlines()[line - 1].strip() if line else ""
        mutants.append((Mutant(str(path.relative_to(REPO)), line, kind, before), text))
    return mutants


def _copy_repo(into: Path) -> Path:
    ignore = shutil.ignore_patterns(".git", ".venv", "node_modules", "__pycache__", "experiments", "*.egg-info",
                                    ".pytest_cache", ".hypothesis", "docs", "schemas")
    shutil.copytree(REPO, into, ignore=ignore, symlinks=True)
    for keep in ("schemas", "docs"):  # freshness tests compare with these
        shutil.copytree(REPO / keep, into / keep)
    return into


def run_mutant(mutant: Mutant, text: str, tests: list[str], timeout: float, workdir: Path) -> Mutant:
    target = workdir / mutant.file
    original = target.read_text()
    target.write_text(text)
    began = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(workdir), "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                              cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        mutant.outcome = "survived" if done.returncode == 0 else "killed"
        if done.returncode in (2, 3, 4):
            mutant.outcome = "error"
    except subprocess.TimeoutExpired:
        mutant.outcome = "timeout"
    finally:
        target.write_text(original)
    mutant.seconds = time.perf_counter() - began
    return mutant


# --- first scores ---------------------------------------------------------------------------------------------------
#
# A drawing (an area and a seed) measures the tests only the first time it is scored: once its survivors have been
# read and tests written for them, scoring it again measures those tests against those very mutants. So the first
# score is recorded (--record) before any survivor is shown, and a drawing already recorded is not recorded again.

RECORD = REPO / "docs" / "testing.md"
RECORD_TABLE = "<!-- first scores: tools/mutation.py --record adds a row per area here -->"
SEEDS_BEFORE = "Seeds drawn before first scores were recorded:"
_ROW = re.compile(r"^\| (\d{4}-\d{2}-\d{2}) \| ([\w./-]+) \| (\d+) \|")


def recorded_drawings(record: Path) -> dict[tuple[str, int], str]:
    """(area, seed) -> the date of its first score, from the record's table; seeds drawn before the record was
    kept count as recorded for every area ("*")."""
    drawings: dict[tuple[str, int], str] = {}
    if not record.is_file():
        return drawings
    lines = record.read_text(encoding="utf-8").splitlines()
    for line in lines:
        if line.startswith(SEEDS_BEFORE):
            for seed in re.findall(r"\d+", line[len(SEEDS_BEFORE):]):
                drawings.setdefault(("*", int(seed)), "before the record")
    if RECORD_TABLE in lines:
        for line in lines[lines.index(RECORD_TABLE) + 1 :]:
            if not line.startswith("|"):
                break
            row = _ROW.match(line)
            if row:
                drawings.setdefault((row[2], int(row[3])), row[1])
    return drawings


def first_scored(drawings: dict[tuple[str, int], str], area: str, seed: int) -> str | None:
    return drawings.get((area, seed)) or drawings.get(("*", seed))


def fresh_seed(drawings: dict[tuple[str, int], str], areas: list[str]) -> int:
    """A seed from the operating system's randomness that no recorded drawing of these areas used."""
    chooser = random.SystemRandom()
    while True:
        seed = chooser.randrange(1000, 1_000_000)
        if not any(first_scored(drawings, area, seed) for area in areas):
            return seed


def record_first_scores(record: Path, rows: list[str]) -> None:
    """Add table rows after the last row of the table that follows the RECORD_TABLE marker."""
    lines = record.read_text(encoding="utf-8").splitlines()
    if RECORD_TABLE not in lines:
        raise SystemExit(f"{record}: no line {RECORD_TABLE!r} to record first scores under")
    at = lines.index(RECORD_TABLE) + 1
    while at < len(lines) and not lines[at].startswith("|"):
        at += 1
    while at < len(lines) and lines[at].startswith("|"):
        at += 1
    lines[at:at] = rows
    tmp = record.with_name(f".{record.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, record)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("areas", nargs="*", help=f"areas to mutate: {', '.join(AREAS)}")
    parser.add_argument("--file", help="one source file instead of areas")
    parser.add_argument("--tests", nargs="*", default=None, help="tests for --file")
    parser.add_argument("--max-per-file", type=int, default=12)
    parser.add_argument("--seed", default="0", help="the drawing's seed, or 'fresh': one no recorded drawing used")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (each in its own copy)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant's tests")
    parser.add_argument("--list", action="store_true", help="list the drawn mutants and stop (a listed drawing is "
                        "seen: it no longer measures anything)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--record", nargs="?", type=Path, const=RECORD, default=None, metavar="FILE",
                        help=f"record each area's first score in FILE (default {RECORD.relative_to(REPO)}) before "
                        "the survivors are shown; refused for a drawing already recorded")
    args = parser.parse_args()

    unknown = [a for a in args.areas if a not in AREAS]
    if unknown:
        parser.error(f"unknown area(s) {unknown}; choose from {', '.join(AREAS)}")
    selected = {"file": {args.file: args.tests or ["tests"]}} if args.file else {a: AREAS[a] for a in args.areas}
    if not selected:
        parser.error("name an area or --file")
    names = [args.file] if args.file else list(selected)
    drawings = recorded_drawings(args.record or RECORD)
    if args.seed == "fresh":
        seed = fresh_seed(drawings, names)
        print(f"fresh seed: {seed}")
    elif args.seed.isdigit():
        seed = int(args.seed)
    else:
        parser.error(f"--seed {args.seed!r}: give a number or 'fresh'")
    earlier = {name: first_scored(drawings, name, seed) for name in names}
    if args.record and any(earlier.values()):
        seen = ", ".join(f"{name} (first scored {date})" for name, date in earlier.items() if date)
        parser.error(f"seed {seed} was drawn before for {seen}: a second score of a drawing is not a measure; "
                     "draw afresh with --seed fresh")
    jobs: list[tuple[str, Mutant, str, list[str]]] = []
    for area, files in selected.items():
        for file, tests in files.items():
            # seeded per file: a file's mutants do not depend on which other areas are run
            rng = random.Random(f"{seed}:{file}")
            for mutant, text in enumerate_mutants(REPO / file, args.max_per_file, rng):
                jobs.append((area, mutant, text, tests))
    if args.list:
        for area, mutant, _, _ in jobs:
            print(f"{area:14} {mutant.file}:{mutant.line} {mutant.kind}: {mutant.before}")
        return 0

    began, load = time.perf_counter(), os.getloadavg()[0]
    results = _run_all(jobs, args.jobs, args.timeout)
    minutes = (time.perf_counter() - began) / 60

    # The score first (and its record), the survivors after it.
    print()
    rows = []
    for area in selected:
        name = args.file if area == "file" else area
        mine = [m for a, m in results if a == area]
        killed = sum(m.outcome in ("killed", "timeout", "error") for m in mine)
        percent = 100 * killed / max(1, len(mine))
        if earlier[name]:
            label = f"re-score of a drawing first scored {earlier[name]} (not a measure)"
        else:
            label = "first score" + ("" if args.record else " (not recorded: --record keeps it)")
        print(f"{label}: {name} seed {seed} --max-per-file {args.max_per_file}: {killed}/{len(mine)} killed "
              f"({percent:.0f}%) in {minutes:.0f} min")
        rows.append(f"| {time.strftime('%Y-%m-%d')} | {name} | {seed} | {args.max_per_file} | {killed}/{len(mine)} | "
                    f"{percent:.0f}% | {minutes:.0f} min | {os.cpu_count()} cores, load {load:.0f} at the start |")
    if args.record:
        record_first_scores(args.record, rows)
        print(f"recorded in {args.record}")
    for area, mutant in results:
        if mutant.outcome == "survived":
            print(f"  survived: {mutant.file}:{mutant.line} {mutant.kind}: {mutant.before[:100]}")
    if args.json:
        args.json.write_text(json.dumps([{"area": a, **asdict(m)} for a, m in results], indent=1))
    return 0


def _run_all(jobs: list, num_jobs: int, timeout: float) -> list[tuple[str, Mutant]]:
    """Every mutant's tests, ``num_jobs`` at a time; progress is printed without outcomes (a drawing's survivors
    are shown only once its score is in). First the tests run once without a mutant: a test that fails anyway
    would count every mutant as killed."""
    with tempfile.TemporaryDirectory() as tmp:
        copies = [_copy_repo(Path(tmp) / f"copy{i}") for i in range(max(1, num_jobs))]
        free = list(copies)
        everything = list(dict.fromkeys(test for _, _, _, tests in jobs for test in tests))
        env = {**os.environ, "PYTHONPATH": str(copies[0]), "PYTHONDONTWRITEBYTECODE": "1"}
        baseline = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n",
                                   str(max(1, num_jobs)), *everything], cwd=copies[0], env=env, capture_output=True,
                                  text=True, check=False)
        if baseline.returncode != 0:
            raise SystemExit(f"the tests fail without a mutant; fix them first:\n{baseline.stdout[-3000:]}")
        print(f"the {len(everything)} test files pass without a mutant", flush=True)

        def work(job):
            area, mutant, text, tests = job
            workdir = free.pop()
            try:
                return area, run_mutant(mutant, text, tests, timeout, workdir)
            finally:
                free.append(workdir)

        results: list[tuple[str, Mutant]] = []
        with ThreadPoolExecutor(max(1, num_jobs)) as pool:
            for area, mutant in pool.map(work, jobs):
                results.append((area, mutant))
                print(f"[{len(results)}/{len(jobs)}] {mutant.seconds:6.1f}s {mutant.file}:{mutant.line} {mutant.kind}",
                      flush=True)
    return results


if __name__ == "__main__":
    sys.exit(main())
