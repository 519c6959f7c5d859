"""`modalities lsp` over stdio: diagnostics (validate's, at their lines, on open and on change), completion,
hover, definition, references, rename, and a check that crashes without taking the server down.

Expected lines and columns are found in the config's text by the test; the diagnostics are compared with what
`modalities validate --format json` prints for the same text, run as a separate process."""

from __future__ import annotations

import re

import pytest

from modalities.registry import default_registry
from tests.lsp.conftest import (
    QUICKSTART,
    apply_edits,
    as_validate_reports,
    line_of,
    start_server,
    validate_json,
    validate_reports,
)

ERROR, WARNING = 1, 2
# What tests/lsp/crashing_plugin.py raises (not imported here: importing it registers its components in this
# process's registry, which other tests read).
BUG = "a bug in the exploding plugin's package check"


def open_config(server, workspace, name: str, text: str):
    path = workspace / "configs" / name
    path.write_text(text)  # on disk as in the buffer: validate can be run on the same text
    return server.open(path, text)


def test_diagnostics_are_validates_at_the_reference_error_line_on_open_and_on_change(server, workspace):
    uri = open_config(server, workspace, "reference.yaml", QUICKSTART)
    assert server.diagnostics_of_version(uri, 1) == []  # the quick start is clean

    broken = QUICKSTART.replace("      instance_key: model_raw\n", "      instance_key: model_rav\n", 1)
    server.change(uri, broken, 2)
    diagnostics = server.diagnostics_of_version(uri, 2)
    line = line_of(broken, "instance_key: model_rav")
    errors = [d for d in diagnostics if d["severity"] == ERROR]
    assert len(errors) == 1
    assert errors[0]["range"] == {"start": {"line": line, "character": 20}, "end": {"line": line, "character": 29}}
    assert "unknown instance_key 'model_rav'" in errors[0]["message"]
    assert "did you mean 'model_raw'?" in errors[0]["message"]
    assert as_validate_reports(diagnostics) == validate_reports(validate_json(workspace, "reference.yaml",
                                                                              broken))

    server.change(uri, QUICKSTART, 3)  # fixed again: the diagnostics go away
    assert server.diagnostics_of_version(uri, 3) == []


def test_a_run_contract_error_shows_at_the_field_to_change(server, workspace):
    broken = QUICKSTART.replace("    vocab_size: 2048\n", "    vocab_size: 100\n", 1)
    uri = open_config(server, workspace, "contract.yaml", broken)
    diagnostics = server.diagnostics_of_version(uri, 1)
    line = line_of(broken, "vocab_size: 100")
    contract = [d for d in diagnostics if d.get("code") == "run-contract"]
    assert [d["range"]["start"] for d in contract] == [{"line": line, "character": 16}]
    assert contract[0]["severity"] == ERROR
    assert "vocab_size 100 cannot embed the data" in contract[0]["message"]
    assert as_validate_reports(diagnostics) == validate_reports(validate_json(workspace, "contract.yaml",
                                                                              broken))


def test_a_burst_of_changes_ends_with_the_last_texts_diagnostics(server, workspace):
    uri = open_config(server, workspace, "burst.yaml", QUICKSTART)
    server.diagnostics_of_version(uri, 1)
    for version, name in enumerate(["a", "ab", "abc", "model_rax"], start=2):
        server.change(uri, QUICKSTART.replace("instance_key: model_raw\n", f"instance_key: {name}\n", 1), version)
    messages = [d["message"] for d in server.diagnostics_of_version(uri, 5) if d["severity"] == ERROR]
    assert len(messages) == 1 and "'model_rax'" in messages[0]


def test_instance_key_offers_the_components_of_the_kind_the_field_accepts_first(server, workspace):
    text = QUICKSTART.replace("      instance_key: initialized_model\n      pass_type: BY_REFERENCE\n\ngradient_clipper",
                              "      instance_key: \n      pass_type: BY_REFERENCE\n\ngradient_clipper")
    uri = open_config(server, workspace, "complete_ref.yaml", text)
    server.diagnostics_of_version(uri, 1)
    line = line_of(text, "      instance_key: ", after=line_of(text, "  component_key: optimizer"))
    items = sorted(server.completions(uri, line, len("      instance_key: ")), key=lambda i: i["sortText"])
    labels = [i["label"] for i in items]
    # the optimizer's wrapped_model takes a model: the quick start's three models come first, in file order
    assert labels[:3] == ["initialized_model", "fsdp_model", "model_raw"]
    assert "optimizer" not in labels  # not itself
    assert {"train_dataloader", "loss_fn", "device_mesh"} <= set(labels[3:])


def test_variant_key_offers_the_variants_of_the_component_key(server, workspace):
    text = QUICKSTART.replace("  variant_key: adam_w\n", "  variant_key: \n", 1)
    uri = open_config(server, workspace, "complete_variant.yaml", text)
    line = line_of(text, "  variant_key: ", after=line_of(text, "  component_key: optimizer"))
    labels = sorted(i["label"] for i in server.completions(uri, line, len("  variant_key: ")))
    assert labels == default_registry().variants("optimizer")
    assert {"adam", "adam_w"} <= set(labels) and "gpt2" not in labels and "onecycle_lr" not in labels


def test_field_names_offer_what_is_missing_with_type_and_default(server, workspace):
    text = QUICKSTART.replace("    eps: 1e-8\n    weight_decay: 1e-1\n", "    we\n    weight_decay: 1e-1\n", 1)
    uri = open_config(server, workspace, "complete_field.yaml", text)
    line = line_of(text, "    we", after=line_of(text, "  component_key: optimizer"))
    items = {i["label"]: i for i in server.completions(uri, line, len("    we"))}
    assert {"eps", "foreach", "fused"} <= set(items)  # not written yet
    assert not {"lr", "betas", "weight_decay", "wrapped_model"} & set(items)  # written already
    assert items["eps"]["textEdit"]["newText"] == "eps: "
    assert items["eps"]["textEdit"]["range"]["start"] == {"line": line, "character": 4}
    assert "float" in items["eps"]["detail"]
    assert "`null`" in items["fused"]["documentation"]["value"]  # its default


def test_interpolation_paths_offer_what_exists(server, workspace):
    text = QUICKSTART.replace("    sequence_length: ${settings.step_profile.sequence_length}\n    sample_key",
                              "    sequence_length: ${settings.step_profile.\n    sample_key", 1)
    uri = open_config(server, workspace, "complete_path.yaml", text)
    line = line_of(text, "${settings.step_profile.\n".rstrip("\n"), after=line_of(text, "train_dataset:"))
    column = len(text.splitlines()[line])
    labels = {i["label"] for i in server.completions(uri, line, column)}
    assert labels == {"gradient_accumulation_steps", "local_train_micro_batch_size", "sequence_length", "dp_degree"}
    settings_line = text.splitlines()[line].replace("step_profile.", "")
    server.change(uri, text.replace(text.splitlines()[line], settings_line), 2)
    labels = {i["label"] for i in server.completions(uri, line, len(settings_line))}
    assert labels == {"experiment_id", "config_file_path", "referencing_keys", "cuda_env", "paths", "intervals",
                      "step_profile", "training_target", "training_progress"}


def test_hover_shows_component_and_field_docs_and_resolved_values(server, workspace):
    uri = open_config(server, workspace, "hover.yaml", QUICKSTART)
    variant = line_of(QUICKSTART, "  variant_key: adam_w")
    text = server.hover(uri, variant, 16)
    assert "optimizer / adam_w" in text
    assert "| `lr` | float (> 0.0) | required | Learning rate" in text  # the reference's row of the field
    clip = line_of(QUICKSTART, "    max_norm: 1.0")
    assert "max_norm" in server.hover(uri, clip, 6)
    sequence = line_of(QUICKSTART, "    sequence_length: ${settings.step_profile.sequence_length}",
                       after=line_of(QUICKSTART, "train_dataset:"))
    shown = server.hover(uri, sequence, 30)
    assert "= `128`" in shown and "settings.step_profile.sequence_length" in shown
    path = line_of(QUICKSTART, "train_dataset_path: ${modalities_env:config_folder_path}")
    shown = server.hover(uri, path, 30)
    assert str(workspace / "configs") + "/../data/sample/corpus.pbin" in shown  # the whole value, resolved
    experiments = line_of(QUICKSTART, "checkpoint_saving_path: ${modalities_env:experiments_root_path}")
    assert f"`{workspace / 'experiments'}`" in server.hover(uri, experiments, 40)  # as validate run in the workspace


def test_definition_goes_from_a_reference_and_from_an_interpolation_to_the_node(server, workspace):
    uri = open_config(server, workspace, "definition.yaml", QUICKSTART)
    use = line_of(QUICKSTART, "      instance_key: optimizer")
    found = server.definition(uri, use, 24)
    assert found["uri"] == uri
    assert found["range"]["start"] == {"line": QUICKSTART.splitlines().index("optimizer:"), "character": 0}
    interpolation = line_of(QUICKSTART, "normalized_shape: ${model_raw.config.n_embd}")
    found = server.definition(uri, interpolation, 30)
    assert found["range"]["start"] == {"line": line_of(QUICKSTART, "    n_embd: 128"), "character": 4}


def test_references_list_every_use_of_a_component(server, workspace):
    uri = open_config(server, workspace, "references.yaml", QUICKSTART)
    lines = QUICKSTART.splitlines()
    name_line = lines.index("model_raw:")
    found = server.references(uri, name_line, 3)
    expected = sorted(
        [(i, line.index("model_raw")) for i, line in enumerate(lines) if "instance_key: model_raw" in line]
        + [(i, m.start()) for i, line in enumerate(lines) for m in re.finditer(r"\$\{model_raw\.", line)]
    )
    assert sorted((r["range"]["start"]["line"], r["range"]["start"]["character"]) for r in found) == expected
    with_declaration = server.references(uri, name_line, 3, include_declaration=True)
    assert len(with_declaration) == len(expected) + 1


def test_rename_of_a_top_level_component_updates_every_reference(server, workspace):
    uri = open_config(server, workspace, "rename.yaml", QUICKSTART)
    lines = QUICKSTART.splitlines()
    edit = server.rename(uri, lines.index("model_raw:"), 2, "gpt2_model")
    renamed = apply_edits(QUICKSTART, edit["changes"][uri])
    assert "model_raw" not in renamed
    assert renamed.count("gpt2_model") == QUICKSTART.count("model_raw")
    before = validate_json(workspace, "rename_before.yaml", QUICKSTART)
    after = validate_json(workspace, "rename_after.yaml", renamed)
    assert before == after == []  # still a clean run: every reference follows the new name

    on_a_use = server.rename(uri, line_of(QUICKSTART, "instance_key: model_raw"), 22, "gpt2_model")
    assert apply_edits(QUICKSTART, on_a_use["changes"][uri]) == renamed
    with pytest.raises(RuntimeError, match="already a top-level key"):
        server.rename(uri, lines.index("model_raw:"), 2, "optimizer")
    with pytest.raises(RuntimeError, match="only a top-level component"):
        server.rename(uri, line_of(QUICKSTART, "    n_layer: 2"), 5, "layers")


def test_a_crash_in_a_check_becomes_a_diagnostic_and_the_server_goes_on(workspace):
    client = start_server(workspace, "--plugin", "tests.lsp.crashing_plugin")
    try:
        crashing = QUICKSTART + "\nexploding:\n  component_key: exploding\n  variant_key: default\n  config: {}\n"
        uri = open_config(client, workspace, "crash.yaml", crashing)
        diagnostics = client.diagnostics_of_version(uri, 1)
        assert [d["code"] for d in diagnostics] == ["check-failed"]
        assert f"RuntimeError: {BUG}" in diagnostics[0]["message"]
        assert diagnostics[0]["range"]["start"] == {"line": 0, "character": 0}

        broken = QUICKSTART.replace("    max_norm: 1.0\n", "    max_nrom: 1.0\n", 1)
        client.change(uri, broken, 2)  # the same server checks the next text as usual
        diagnostics = client.diagnostics_of_version(uri, 2)
        assert [d["code"] for d in diagnostics] == ["unknown-field"]
        assert diagnostics[0]["range"]["start"]["line"] == line_of(broken, "max_nrom")
        assert "optimizer / adam_w" in client.hover(uri, line_of(broken, "  variant_key: adam_w"), 16)

        chatty = QUICKSTART + "\nchatty:\n  component_key: chatty\n  variant_key: default\n  config: {size: 2}\n"
        client.change(uri, chatty, 3)  # its print() goes to the log, not into the protocol
        assert [d["code"] for d in client.diagnostics_of_version(uri, 3)] == ["unused-component"]
        assert client.protocol_errors == []
    finally:
        client.close()
    assert client.proc.returncode == 0


@pytest.mark.parametrize(("encodings", "units"), [(["utf-8", "utf-16"], 4 + 2 * 2), (["utf-16"], 4 + 2), (None, 4 + 2)])
def test_columns_count_in_the_encoding_agreed_with_the_client(workspace, encodings, units):
    """An unknown field named by an emoji: where its range ends counts UTF-8 bytes when the client prefers them,
    else UTF-16 units (the protocol's default)."""
    general = {"positionEncodings": encodings} if encodings else None
    client = start_server(workspace, general_capabilities=general)
    try:
        text = QUICKSTART.replace("    max_norm: 1.0\n", "    😀: 1\n    max_norm: 1.0\n", 1)
        uri = open_config(client, workspace, f"encoding_{len(encodings or [])}.yaml", text)
        line = line_of(text, "😀: 1")
        [error] = [d for d in client.diagnostics_of_version(uri, 1) if d["range"]["start"]["line"] == line]
        assert error["range"]["start"]["character"] == 4
        assert error["range"]["end"]["character"] == units  # the key 😀 ends after its bytes or units
    finally:
        client.close()
