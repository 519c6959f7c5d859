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
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# area -> {source file: the tests that exercise it}
AREAS: dict[str, dict[str, list[str]]] = {
    "compiler": {
        "modalities/config/overrides.py": ["tests/config/test_overrides.py", "tests/config/test_resolve.py",
                                           "tests/config/test_cli.py"],
        "modalities/config/resolve.py": ["tests/config/test_resolve.py", "tests/config/test_hostile_configs.py"],
        "modalities/config/graph.py": ["tests/config/test_graph_validate_build.py", "tests/config/test_cli.py",
                                       "tests/config/test_provenance_and_diff.py"],
        "modalities/config/validate.py": ["tests/config/test_graph_validate_build.py", "tests/config/test_cli.py",
                                          "tests/config/test_overrides.py", "tests/training/test_run_contract.py",
                                          "tests/models/test_norms_hf_mfu.py"],
    },
    "data": {
        "modalities/data/packing.py": ["tests/data/test_packing.py", "tests/data/test_packing_pipeline.py"],
        "modalities/data/pbin_info.py": ["tests/data/test_pbin_info.py", "tests/training/test_run_contract.py"],
        "modalities/data/pbin_stats.py": ["tests/data/test_pbin_info.py"],
        "modalities/data/prepared_tokenizer.py": ["tests/data/test_prepared_tokenizer.py"],
        "modalities/data/samplers.py": ["tests/data/test_samplers.py", "tests/data/test_loaders.py"],
        "modalities/data/loaders.py": ["tests/data/test_loaders.py"],
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("areas", nargs="*", help=f"areas to mutate: {', '.join(AREAS)}")
    parser.add_argument("--file", help="one source file instead of areas")
    parser.add_argument("--tests", nargs="*", default=None, help="tests for --file")
    parser.add_argument("--max-per-file", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (each in its own copy)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant's tests")
    parser.add_argument("--list", action="store_true", help="list the drawn mutants and stop")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    unknown = [a for a in args.areas if a not in AREAS]
    if unknown:
        parser.error(f"unknown area(s) {unknown}; choose from {', '.join(AREAS)}")
    selected = {"file": {args.file: args.tests or ["tests"]}} if args.file else {a: AREAS[a] for a in args.areas}
    if not selected:
        parser.error("name an area or --file")
    jobs: list[tuple[str, Mutant, str, list[str]]] = []
    for area, files in selected.items():
        for file, tests in files.items():
            # seeded per file: a file's mutants do not depend on which other areas are run
            rng = random.Random(f"{args.seed}:{file}")
            for mutant, text in enumerate_mutants(REPO / file, args.max_per_file, rng):
                jobs.append((area, mutant, text, tests))
    if args.list:
        for area, mutant, _, _ in jobs:
            print(f"{area:14} {mutant.file}:{mutant.line} {mutant.kind}: {mutant.before}")
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        copies = [_copy_repo(Path(tmp) / f"copy{i}") for i in range(max(1, args.jobs))]
        free = list(copies)

        def work(job):
            area, mutant, text, tests = job
            workdir = free.pop()
            try:
                return area, run_mutant(mutant, text, tests, args.timeout, workdir)
            finally:
                free.append(workdir)

        results: list[tuple[str, Mutant]] = []
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            for area, mutant in pool.map(work, jobs):
                results.append((area, mutant))
                print(f"{mutant.outcome:8} {mutant.seconds:6.1f}s {mutant.file}:{mutant.line} {mutant.kind}: "
                      f"{mutant.before[:90]}", flush=True)

    print()
    for area in selected:
        mine = [m for a, m in results if a == area]
        killed = sum(m.outcome in ("killed", "timeout", "error") for m in mine)
        print(f"{area}: {killed}/{len(mine)} killed ({100 * killed / max(1, len(mine)):.0f}%)")
        for m in mine:
            if m.outcome == "survived":
                print(f"  survived: {m.file}:{m.line} {m.kind}: {m.before[:100]}")
    if args.json:
        args.json.write_text(json.dumps([{"area": a, **asdict(m)} for a, m in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
