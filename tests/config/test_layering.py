"""The layers import each other in one direction only: components never import the compiler (the registry is
where they meet), schema and docs are functions of a registry, checkpointing does not reach into training, and
progress has one description."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "modalities"
COMPILER = ("modalities.config", "modalities.api", "modalities.cli", "modalities.lsp")


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


def _violations(folder: str, forbidden: tuple[str, ...], modules: list[Path] | None = None) -> list[str]:
    files = modules if modules is not None else sorted((PACKAGE / folder).rglob("*.py"))
    return [
        f"{path.relative_to(PACKAGE.parent)}:{line}: imports {module}"
        for path in files
        for line, module in _imports(path)
        if module.startswith(forbidden)
    ]


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("schema", COMPILER),
        ("registry", COMPILER),
        ("checkpointing", ("modalities.training", *COMPILER)),
        ("config", ("modalities.lsp", "modalities.cli")),  # the language server is a layer over the compiler
    ],
)
def test_a_layer_does_not_import_the_ones_above_it(folder, forbidden):
    assert _violations(folder, forbidden) == []


def _component_modules() -> list[Path]:
    """Every module a catalogue names as a config class or builder of a component."""
    modules = set()
    for catalog in PACKAGE.rglob("catalog.py"):
        text = catalog.read_text()
        prefixes = dict(re.findall(r'^(_[A-Z]+) = "(modalities\.[a-z_.]+):"', text, re.M))
        for name in re.findall(r'"(modalities\.[a-z_.]+):', text):
            modules.add(name)
        modules.update(prefixes.values())
    return sorted(PACKAGE.parent / (m.replace(".", "/") + ".py") for m in modules)


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
