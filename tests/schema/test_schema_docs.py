"""`modalities docs`: the component reference generated from the registry."""

from __future__ import annotations

import subprocess
import sys

from modalities.registry import default_registry
from modalities.schema.docs import generate_docs
from tests.schema.conftest import REPO_ROOT

COMPONENTS_MD = REPO_ROOT / "docs" / "components.md"


def test_committed_component_reference_is_fresh():
    expected = generate_docs(default_registry(), COMPONENTS_MD)
    assert COMPONENTS_MD.read_text() == expected, "docs/components.md is stale: run `python -m modalities docs`"


def test_every_component_has_a_row_and_a_field_table(toy_registry):
    text = generate_docs(toy_registry, COMPONENTS_MD)
    header = "| Component type | Variant | Implementation | Configuration | Interface | Description |"
    assert text.count(header) == len(toy_registry.component_keys())
    for spec in toy_registry:
        assert f"| {spec.component_key} | [{spec.variant_key}](#" in text
        section = text.split(f"### {spec.component_key} / {spec.variant_key}\n", 1)[1].split("\n### ", 1)[0]
        for name, info in spec.config_class().model_fields.items():
            assert f"| `{name}`" in section, (spec.name, name)
            assert info.description.replace("|", "\\|").replace("\n", " ") in section


def test_field_rows_show_type_default_and_description(toy_registry):
    text = generate_docs(toy_registry, COMPONENTS_MD)
    assert "| `optimizer` | component: `optimizer` | required | The optimizer to step. |" in text
    assert '| `schedule` | `"constant"` \\| `"cosine"` | `"constant"` | Learning-rate schedule. |' in text
    assert "| `callbacks` | list of component: `optimizer` or `model` | `[]` |" in text
    assert "| `betas` | [float, float] | `[0.9, 0.999]` |" in text
    assert "| `num_ranks` (also `dp_degree`) | int (> 0) | required |" in text


def test_links_point_at_files_of_the_repository():
    text = COMPONENTS_MD.read_text()
    assert "[`NumStepsFromNumTokensConfig`](../modalities/conversion/config.py)" in text
    assert "[`num_steps_from_num_tokens`](../modalities/conversion/number_conversion.py)" in text


def test_cli_check_and_plugin(tmp_path):
    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "modalities", "docs", *args], capture_output=True, text=True, cwd=REPO_ROOT
        )

    assert cli("--check").returncode == 0
    out = tmp_path / "components.md"
    written = cli("--plugin", "tests.schema.plugins.toy_plugin", "-o", str(out))
    assert written.returncode == 0, written.stderr
    assert "### toy_trainer / default" in out.read_text()
    stale = cli("--check", "-o", str(out))
    assert stale.returncode == 1 and "stale" in stale.stderr
