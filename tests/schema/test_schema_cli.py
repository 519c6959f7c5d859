"""`modalities schema` and `Main.write_schema`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from modalities import Main
from modalities.schema.json_schema import DOCUMENT_SCHEMA_NAME, check_schemas
from tests.schema.conftest import REPO_ROOT
from tests.schema.plugins.toy_configs import ToyModelConfig, toy_model

PLUGIN = ("--plugin", "tests.schema.plugins.toy_plugin")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "modalities", "schema", *args], capture_output=True, text=True, cwd=REPO_ROOT
    )


def test_check_passes_on_the_committed_schemas():
    result = cli("--check")
    assert result.returncode == 0, result.stderr


def test_plugin_components_are_written_and_check_lists_stale_files(tmp_path):
    written = cli(*PLUGIN, "-o", str(tmp_path))
    assert written.returncode == 0, written.stderr
    document = json.loads((tmp_path / DOCUMENT_SCHEMA_NAME).read_text())
    assert "component.toy_trainer.default" in document["$defs"]
    assert (tmp_path / "components" / "optimizer" / "toy_adam.schema.json").is_file()

    assert cli(*PLUGIN, "--check", "-o", str(tmp_path)).returncode == 0
    stale = cli("--check", "-o", str(tmp_path))  # without the plugin its components are extra files
    assert stale.returncode == 1
    assert f"{tmp_path}/components/toy_trainer/default.schema.json" in stale.stderr
    assert f"{tmp_path}/{DOCUMENT_SCHEMA_NAME}" in stale.stderr
    assert "modalities schema -o" in stale.stderr


def test_schema_command_does_not_import_torch(tmp_path):
    code = (
        "import sys; from modalities.cli.main import main; "
        f"rc = main(['schema', '-o', {str(tmp_path)!r}]); "
        "assert 'torch' not in sys.modules, 'torch was imported'; raise SystemExit(rc)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr


def test_a_missing_plugin_is_a_clear_error(tmp_path):
    result = cli("--plugin", "no_such_plugin_module", "-o", str(tmp_path))
    assert result.returncode == 2 and "no_such_plugin_module" in result.stderr and "Traceback" not in result.stderr


def test_main_writes_the_schema_of_its_own_registry(tmp_path):
    main = Main({"settings": {}})
    main.add_custom_component("model", "toy_model", toy_model, ToyModelConfig)
    main.write_schema(tmp_path)
    document = json.loads((tmp_path / DOCUMENT_SCHEMA_NAME).read_text())
    assert "component.model.toy_model" in document["$defs"]
    assert check_schemas(main.registry, tmp_path) == []


def test_components_of_an_installed_entry_point_plugin_are_written(tmp_path):
    site = tmp_path / "site"
    dist_info = site / "toy_plugin-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        "[modalities.plugins]\ntoy = tests.schema.plugins.toy_configs:register\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO_ROOT}"}
    out = tmp_path / "schemas"
    result = subprocess.run(
        [sys.executable, "-m", "modalities", "schema", "-o", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert (out / "components" / "toy_trainer" / "default.schema.json").is_file()
