"""An area's config.py gives every config class of the area under its public name while each class lives in a
module of its own (registry/lazy.py): the names resolve to those classes, and the catalogues, schema and docs
still see every one."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest
from pydantic import BaseModel

from modalities.registry.builtins import builtin_specs
from tests.config.conftest import REPO

AREAS = [
    "modalities.checkpointing.config",
    "modalities.conversion.config",
    "modalities.data.config",
    "modalities.logging.config",
    "modalities.models.gpt2.config",
    "modalities.models.initialization.config",
    "modalities.optim.config",
    "modalities.training.config",
]


@pytest.mark.parametrize("area", AREAS)
def test_every_class_of_the_index_is_there_under_its_public_name(area):
    module = importlib.import_module(area)
    for name, home in module.CONFIG_CLASSES.items():
        cls = getattr(module, name)
        assert cls.__name__ == name and cls.__module__ == home, (name, home)
        assert getattr(importlib.import_module(home), name) is cls
        assert name in dir(module)
    imported = __import__(area, fromlist=list(module.CONFIG_CLASSES))  # what `from area import A, B` does
    assert all(getattr(imported, name).__name__ == name for name in module.CONFIG_CLASSES)
    with pytest.raises(AttributeError, match=rf"module '{area}' has no attribute 'NoSuchConfig'"):
        module.NoSuchConfig  # noqa: B018


def test_every_class_defined_in_the_area_modules_is_in_their_index():
    """A class added to a module under configs/ without an entry in the index would not be public."""
    for area in AREAS:
        index = importlib.import_module(area).CONFIG_CLASSES
        folder = REPO / area.replace(".", "/").removesuffix("/config") / "configs"
        for path in sorted(folder.glob("*.py")):
            module = importlib.import_module(f"{area}s.{path.stem}") if path.stem != "__init__" else None
            if module is None:
                continue
            defined = {n for n, v in vars(module).items() if isinstance(v, type) and v.__module__ == module.__name__}
            assert {n for n in defined if not n.startswith("_")} <= set(index), (path, defined - set(index))


def test_the_catalogues_name_only_classes_that_resolve():
    for spec in builtin_specs():
        assert issubclass(spec.config_class(), BaseModel), spec.name


def test_schema_lists_every_component_without_importing_the_areas_first(tmp_path):
    """In a fresh process (no config class imported yet), `modalities schema` writes one file per registered
    component: every lazily defined class is reached through the catalogue."""
    code = (
        "import sys\n"
        "from modalities.cli.main import main\n"
        f"main(['schema', '-o', {str(tmp_path)!r}])\n"
        "from modalities.registry import default_registry\n"
        "print(sorted(spec.name for spec in default_registry()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr
    names = json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"'))
    written = sorted(
        f"{p.parent.name}/{p.name.removesuffix('.schema.json')}"
        for p in (tmp_path / "components").glob("*/*.schema.json")
    )
    assert written == names and len(names) > 100
