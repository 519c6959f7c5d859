"""The generated schema in a real editor server: yaml-language-server, spoken to over LSP (--stdio).

The server is installed by `cd tools/lsp && npm ci`; CI does that before the tests.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from modalities.schema.json_schema import DOCUMENT_SCHEMA_NAME, PARTIAL_SCHEMA_NAME, write_schemas
from tests.schema.conftest import REPO_ROOT
from tests.schema.lsp_client import LspClient
from tests.schema.plugins.toy_configs import TOY_OPTIMIZERS

PROPERTY_KIND = 10  # LSP CompletionItemKind.Property
ERROR = 1  # LSP DiagnosticSeverity.Error
# YAML 1.1 as docs/ide.md tells editors (the reference and we read configs so)
SERVER_SETTINGS = {
    "yaml": {"validate": True, "completion": True, "hover": True, "schemas": {}, "schemaStore": {"enable": False},
             "yamlVersion": "1.1"}
}
# The merge tags of files with `extends` declared, as docs/ide.md tells editors to (they are then completed too)
TAG_SETTINGS = {"yaml": {**SERVER_SETTINGS["yaml"], "customTags": ["!delete scalar", "!replace mapping"]}}


@pytest.fixture(scope="module")
def workspace(toy_registry, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lsp_workspace")
    write_schemas(toy_registry, root / "schemas")
    (root / "configs").mkdir()
    return root


@pytest.fixture(scope="module")
def server(workspace):
    client = LspClient(workspace, SERVER_SETTINGS)
    yield client
    client.close()


@pytest.fixture(scope="module")
def tag_server(workspace):
    client = LspClient(workspace, TAG_SETTINGS)
    yield client
    client.close()


CURSOR = "|CURSOR|"


def open_config(
    server: LspClient, workspace: Path, name: str, body: str, schema: str = DOCUMENT_SCHEMA_NAME
) -> tuple[str, list[str]]:
    """Write a config with the schema modeline (a relative path, as in configs/) and open it. A CURSOR
    marker is replaced by a space (where completion is asked for)."""
    text = f"# yaml-language-server: $schema=../schemas/{schema}\n" + textwrap.dedent(body)
    text = text.replace(CURSOR, " ")
    path = workspace / "configs" / name
    path.write_text(text)
    return server.open(path, text), text.splitlines()


def line_of(lines: list[str], needle: str) -> int:
    return next(i for i, line in enumerate(lines) if needle in line)


def test_variant_key_completes_exactly_the_registered_optimizers(server, workspace, toy_registry):
    uri, lines = open_config(
        server,
        workspace,
        "variant.yaml",
        """\
        optimizer:
          component_key: optimizer
          variant_key:|CURSOR|
        """,
    )
    line = line_of(lines, "variant_key:")
    labels = [item["label"] for item in server.completions(uri, line, len(lines[line]))]
    assert sorted(labels) == toy_registry.variants("optimizer")
    assert set(TOY_OPTIMIZERS) <= set(labels)


def test_component_key_completes_every_registered_key(server, workspace, toy_registry):
    uri, lines = open_config(server, workspace, "component_key.yaml", "thing:\n  component_key:|CURSOR|\n")
    line = line_of(lines, "component_key:")
    labels = [item["label"] for item in server.completions(uri, line, len(lines[line]))]
    assert sorted(labels) == toy_registry.component_keys()


@pytest.mark.parametrize("variant_key", TOY_OPTIMIZERS)
def test_config_completes_the_fields_of_that_variant(server, workspace, toy_registry, variant_key):
    uri, lines = open_config(
        server,
        workspace,
        f"fields_{variant_key}.yaml",
        f"""\
        optimizer:
          component_key: optimizer
          variant_key: {variant_key}
          config:
           |CURSOR|
        """,
    )
    line = line_of(lines, "config:") + 1
    items = server.completions(uri, line, 4)
    fields = sorted(item["label"] for item in items if item.get("kind") == PROPERTY_KIND)
    expected = sorted(toy_registry.get("optimizer", variant_key).config_class().model_fields)
    assert fields == expected


def test_custom_component_from_a_plugin_is_completed_and_hovered(server, workspace):
    uri, lines = open_config(
        server,
        workspace,
        "trainer.yaml",
        """\
        trainer:
          component_key: toy_trainer
          variant_key: default
          config:
            schedule:|CURSOR|
        """,
    )
    schedule_line = line_of(lines, "schedule:")
    labels = [item["label"] for item in server.completions(uri, schedule_line, len(lines[schedule_line]))]
    assert sorted(labels) == ["constant", "cosine"]
    hover = server.hover(uri, schedule_line, 6)
    assert "Learning-rate schedule." in hover


def test_hover_shows_description_type_and_default(server, workspace):
    uri, lines = open_config(
        server,
        workspace,
        "hover.yaml",
        """\
        optimizer:
          component_key: optimizer
          variant_key: toy_sgd
          config:
            lr: 0.1
            momentum: 0.5
        """,
    )
    lr = server.hover(uri, line_of(lines, "lr:"), 5)
    assert "Learning rate." in lr and "Type: float, required" in lr
    momentum = server.hover(uri, line_of(lines, "momentum:"), 6)
    assert "Momentum factor." in momentum and "Type: float, default 0.0" in momentum


def test_misspelled_field_and_wrong_type_are_reported_on_their_lines(server, workspace):
    uri, lines = open_config(
        server,
        workspace,
        "broken.yaml",
        """\
        model:
          component_key: model
          variant_key: toy_model
          config:
            width: 8
        optimizer:
          component_key: optimizer
          variant_key: toy_adam
          config:
            wrapped_model:
              instance_key: model
              pass_type: BY_REFERENCE
            lr: 0.001
            amsgrd: true
        trainer:
          component_key: toy_trainer
          variant_key: default
          config:
            optimizer:
              instance_key: optimizer
              pass_type: BY_REFERENCE
            num_steps: many
        """,
    )
    errors = [d for d in server.diagnostics(uri) if d.get("severity", ERROR) == ERROR]
    by_line = {d["range"]["start"]["line"]: d["message"] for d in errors}
    assert "amsgrd" in by_line.get(line_of(lines, "amsgrd:"), ""), errors
    assert "integer" in by_line.get(line_of(lines, "num_steps:"), ""), errors
    assert len(errors) == 2, errors


def test_unknown_variant_and_wrong_kind_are_reported(server, workspace):
    uri, lines = open_config(
        server,
        workspace,
        "wrong_kind.yaml",
        """\
        optimizer:
          component_key: optimizer
          variant_key: toy_adamw
          config:
            lr: 0.1
        trainer:
          component_key: toy_trainer
          variant_key: default
          config:
            num_steps: 3
            optimizer:
              component_key: model
              variant_key: toy_model
              config:
                width: 8
        """,
    )
    errors = [d for d in server.diagnostics(uri) if d.get("severity", ERROR) == ERROR]
    lines_with_errors = {d["range"]["start"]["line"] for d in errors}
    assert line_of(lines, "toy_adamw") in lines_with_errors, errors
    wrong_kind = range(line_of(lines, "    optimizer:"), line_of(lines, "width: 8") + 1)
    assert lines_with_errors & set(wrong_kind), errors


def test_committed_configs_have_no_diagnostics_with_the_committed_schema():
    conversions = Path(__file__).parent / "data" / "number_conversion_only.yaml"
    configs = sorted((REPO_ROOT / "configs").rglob("*.yaml")) + [conversions]
    client = LspClient(REPO_ROOT, TAG_SETTINGS)
    try:
        # The same file with a typo must be reported: proof that the modeline's schema was applied.
        typo = conversions.with_name("typo.yaml")
        uri = client.open(typo, conversions.read_text().replace("num_tokens: 4096", "num_tokenz: 4096"))
        assert any("num_tokenz" in d["message"] for d in client.diagnostics(uri))
        problems = {}
        for config in configs:
            uri = client.open(config, config.read_text())
            errors = [d for d in client.diagnostics(uri) if d.get("severity", ERROR) == ERROR]
            if errors:
                problems[str(config.relative_to(REPO_ROOT))] = [
                    (d["range"]["start"]["line"] + 1, d["message"]) for d in errors
                ]
    finally:
        client.close()
    assert problems == {}


def test_a_file_with_extends_completes_and_is_checked_with_the_partial_schema(tag_server, workspace, toy_registry):
    server = tag_server
    # Nothing is required (the base holds the rest) and `!delete` is accepted...
    uri, _ = open_config(
        server,
        workspace,
        "experiment.yaml",
        """\
        extends: base.yaml
        optimizer:
          config:
            lr: 0.5
            momentum: !delete
        model: !delete
        """,
        schema=PARTIAL_SCHEMA_NAME,
    )
    assert [d for d in server.diagnostics(uri) if d.get("severity", ERROR) == ERROR] == []
    # ...and a misspelled field of a node that names its variant is reported on its line (without the variant,
    # the editor cannot tell which variant's fields are meant, and reports against one it guesses).
    uri, lines = open_config(
        server,
        workspace,
        "experiment_typo.yaml",
        """\
        extends: base.yaml
        optimizer:
          component_key: optimizer
          variant_key: toy_sgd
          config:
            momentum: !delete
            nesterovv: true
        """,
        schema=PARTIAL_SCHEMA_NAME,
    )
    errors = [d for d in server.diagnostics(uri) if d.get("severity", ERROR) == ERROR]
    assert [(d["range"]["start"]["line"], "nesterovv" in d["message"]) for d in errors] == [
        (line_of(lines, "nesterovv"), True)], errors
    uri, lines = open_config(
        server,
        workspace,
        "experiment_variant.yaml",
        """\
        extends: base.yaml
        optimizer:
          component_key: optimizer
          variant_key:|CURSOR|
        """,
        schema=PARTIAL_SCHEMA_NAME,
    )
    line = line_of(lines, "variant_key:")
    labels = {item["label"] for item in server.completions(uri, line, len(lines[line]))}
    assert set(toy_registry.variants("optimizer")) <= labels
    uri, lines = open_config(
        server,
        workspace,
        "experiment_fields.yaml",
        """\
        extends: base.yaml
        optimizer:
          component_key: optimizer
          variant_key: toy_sgd
          config:
           |CURSOR|
        """,
        schema=PARTIAL_SCHEMA_NAME,
    )
    items = server.completions(uri, line_of(lines, "config:") + 1, 4)
    fields = sorted(item["label"] for item in items if item.get("kind") == PROPERTY_KIND)
    assert fields == sorted(toy_registry.get("optimizer", "toy_sgd").config_class().model_fields)
