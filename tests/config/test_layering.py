"""The floors import each other in one direction only (docs/architecture.md draws them): components never import
the compiler (the registry is where they meet); the lower floors (the components and schema) import neither the
compiler, the API, the CLI nor training, not even inside a function; training imports neither the compiler nor
the API; there are no import circles; the functions of training/ and config/ stay short; progress has one
description."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "modalities"
COMPILER = ("modalities.config", "modalities.api", "modalities.cli", "modalities.lsp")
# The floors below the run: what a component needs lives here or in the registry and modalities/batch.py.
LOWER_FLOORS = ("data", "logging", "interop", "models", "optim", "checkpointing", "conversion", "schema",
                "profiling", "inference")
ABOVE_THE_LOWER_FLOORS = (*COMPILER, "modalities.training")
LONGEST_FUNCTION = 80  # lines, in training/ and config/ (aim for ~60)


def _module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(path: Path, node: ast.ImportFrom, root: Path) -> str:
    """The module a ``from ... import`` names, a relative one made absolute."""
    if not node.level:
        return node.module or ""
    package = _module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


@functools.cache
def _parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


def _imports(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """Every import of the file, at module level, inside a function or under TYPE_CHECKING alike, as (line,
    module). ``from a import b`` also yields ``a.b`` (b may be a module); ``from modalities import X`` counts as
    importing modalities.api, which the package re-exports, unless X is the version."""
    found = []
    for node in ast.walk(_parsed(path)):
        if isinstance(node, ast.ImportFrom):
            module = _absolute(path, node, root)
            if module == "modalities":
                found += [(node.lineno, "modalities" if a.name == "__version__" else "modalities.api") for a in node.names]
            elif module:
                found.append((node.lineno, module))
                found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


def _is_under(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


def _violations(
    folder: str, forbidden: tuple[str, ...], modules: list[Path] | None = None, root: Path = PACKAGE
) -> list[str]:
    files = modules if modules is not None else sorted((root / folder).rglob("*.py"))
    found = {
        (path.relative_to(root.parent), line, module)
        for path in files
        for line, module in _imports(path, root)
        if _is_under(module, forbidden)
    }
    # `from a.b import c` is named once, as a.b (a.b.c is there to find submodules)
    return [
        f"{path}:{line}: imports {module}"
        for path, line, module in sorted(found)
        if (path, line, module.rpartition(".")[0]) not in found
    ]


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("registry", (*COMPILER, "modalities.training")),
        ("config", ("modalities.lsp", "modalities.cli", "modalities.api")),  # the language server, the CLI and
        # the library API are layers over the compiler
        ("training", COMPILER),  # the run receives built components; the compiler calls it through the registry
    ],
)
def test_a_floor_does_not_import_the_ones_above_it(folder, forbidden):
    assert _violations(folder, forbidden) == []


def test_the_bottom_floor_imports_nothing_above_it():
    """registry/ and batch.py: the tables of components and the batch types, below everything."""
    floors = {path.stem if path.is_file() else path.name for path in PACKAGE.iterdir()
              if (path.suffix == ".py" or (path / "__init__.py").is_file()) and path.name != "__init__.py"}
    above = tuple(f"modalities.{floor}" for floor in sorted(floors - {"registry", "batch"}))
    assert len(above) > 15
    assert _violations("registry", above) == []
    assert _violations("", (*above, "modalities.registry"), [PACKAGE / "batch.py"]) == []


def test_the_library_api_does_not_import_the_cli():
    api = [PACKAGE / "api.py", PACKAGE / "data_api.py"]
    assert _violations("", ("modalities.cli", "modalities.lsp"), api) == []


@pytest.mark.parametrize("folder", LOWER_FLOORS)
def test_the_lower_floors_import_neither_compiler_api_cli_nor_training(folder):
    assert (PACKAGE / folder).is_dir()
    assert _violations(folder, ABOVE_THE_LOWER_FLOORS) == []


def test_the_floor_rule_sees_every_kind_of_import(tmp_path):
    """The rule's own check: an upward import is found at module level, inside a function, under
    TYPE_CHECKING, relative, and through the package's re-export; the version is not the API."""
    folder = tmp_path / "modalities" / "data"
    folder.mkdir(parents=True)
    (folder / "sample.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from modalities.training.experiment import RESULTS_FILE\n"
        "if TYPE_CHECKING:\n    from modalities.config.graph import ComponentGraph\n"
        "def f():\n    from ..api import Main\n    from modalities import load_app_config_dict, __version__\n"
        "    import modalities.cli.main\n"
        "from modalities.logging import curves\n"
    )
    assert _violations("data", ABOVE_THE_LOWER_FLOORS, root=tmp_path / "modalities") == [
        "modalities/data/sample.py:2: imports modalities.training.experiment",
        "modalities/data/sample.py:4: imports modalities.config.graph",
        "modalities/data/sample.py:6: imports modalities.api",
        "modalities/data/sample.py:7: imports modalities.api",
        "modalities/data/sample.py:8: imports modalities.cli.main",
    ]


def _import_graph() -> nx.DiGraph:
    """Module -> module it imports (anywhere in the file), among the package's modules. The package itself
    (modalities/__init__.py, the library API's front) is left out: Python runs it before any submodule."""
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = nx.DiGraph()
    for name, path in paths.items():
        graph.add_node(name)
        for line, module in _imports(path):
            while module and module not in paths:  # a name inside a module -> the module
                module = module.rpartition(".")[0]
            if module and module != name and module != "modalities":
                graph.add_edge(name, module, line=line)
    return graph


def test_no_import_circles():
    graph = _import_graph()
    assert graph.number_of_nodes() > 100
    circles = []
    for modules in nx.strongly_connected_components(graph):  # a circle lies within one; say one circle of each
        if len(modules) > 1:
            cycle = [a for a, _ in nx.find_cycle(graph.subgraph(modules))]
            circles.append(" -> ".join(
                f"{a} (line {graph.edges[a, b]['line']})" for a, b in zip(cycle, cycle[1:] + cycle[:1])
            ))
    assert circles == []


def _long_functions(folder: Path, longest: int) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(_parsed(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if node.end_lineno - first + 1 > longest:
                    found.append(f"{path.relative_to(folder.parent)}:{node.lineno}: {node.name} is "
                                 f"{node.end_lineno - first + 1} lines")
    return found


@pytest.mark.parametrize("folder", ["training", "config"])
def test_functions_of_training_and_config_are_short(folder):
    assert _long_functions(PACKAGE / folder, LONGEST_FUNCTION) == []


def test_the_length_rule_counts_decorators_and_nested_functions(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(78))
    (tmp_path / "a.py").write_text(f"@decorator\ndef outer():\n    def inner():\n        pass\n{body}\n")
    (tmp_path / "b.py").write_text(f"def fits():\n{body}\n    return 1\n")  # exactly 80 lines
    assert [line.split(": ", 1)[1] for line in _long_functions(tmp_path, LONGEST_FUNCTION)] == [
        "outer is 82 lines"
    ]


def _component_modules() -> list[Path]:
    """Every module a catalogue names as a config class or builder of a component, and the modules an area's
    config.py takes its classes from (its ``configs/``, see registry/lazy.py)."""
    modules = set()
    for catalog in PACKAGE.rglob("catalog.py"):
        text = catalog.read_text()
        prefixes = dict(re.findall(r'^(_[A-Z]+) = "(modalities\.[a-z_.]+):"', text, re.M))
        for name in re.findall(r'"(modalities\.[a-z_.]+):', text):
            modules.add(name)
        modules.update(prefixes.values())
    paths = [PACKAGE.parent / m.replace(".", "/") for m in modules]
    files = {path.with_suffix(".py") if path.with_suffix(".py").is_file() else path / "__init__.py" for path in paths}
    return sorted(files | set(PACKAGE.rglob("configs/*.py")))


def test_components_do_not_import_the_compiler():
    modules = _component_modules()
    assert len(modules) > 20  # the catalogues were read
    assert _violations("", COMPILER, modules) == []


def test_progress_has_one_description():
    defined = [
        f"{path.relative_to(PACKAGE.parent)}"
        for path in PACKAGE.rglob("*.py")
        if re.search(r"^class TrainingProgress\b", path.read_text(), re.M)
    ]
    assert defined == ["modalities/training/run.py"]
