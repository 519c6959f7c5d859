"""The server's pieces in-process: positions (UTF-16 columns), the YAML context of a cursor in text that does not
parse, checks of unsaved text, and diagnostics grouped and published by the file that holds them (the seam a
composed config uses: a mistake in a base file shows in the base file)."""

from __future__ import annotations

import pytest

pytest.importorskip("pygls")

from lsprotocol import types as lsp

from modalities.config.compiler import compile_file
from modalities.config.diagnostics import WARNING, Diagnostic
from modalities.config.spans import Span
from modalities.lsp.analysis import CHECK_FAILED, check
from modalities.lsp.server import ConfigLanguageServer
from modalities.lsp.text import (
    character_column,
    client_column,
    cursor_context,
    mapping_scalars,
    span_range,
    use_position_encoding,
)

CONFIG = """\
n:
  component_key: number_conversion
  variant_key: num_samples_from_num_tokens
  config:
    num_tokens: 8
    sequence_length: 2
"""


@pytest.mark.parametrize(
    ("line", "column", "utf8", "utf16"),
    [
        ("plain: text", 7, 7, 7),
        ("é: x", 1, 2, 1),  # in the Basic Multilingual Plane: one UTF-16 unit, two UTF-8 bytes
        ("😀: x", 1, 4, 2),  # outside it: a surrogate pair, four bytes
        ("a😀b😀: x", 4, 10, 6),
        ("😀", 1, 4, 2),  # the end of the line
        ("", 0, 0, 0),
    ],
)
def test_columns_convert_between_characters_and_the_agreed_units(line, column, utf8, utf16):
    for encoding, units in (("utf-16", utf16), ("utf-8", utf8), ("utf-32", column)):
        use_position_encoding(encoding)
        try:
            assert client_column(line, column) == units
            assert character_column(line, units) == column
        finally:
            use_position_encoding("utf-16")


def test_a_span_becomes_a_zero_based_range_in_utf16_units():
    lines = ["key: 😀 value", "next: 1"]
    assert span_range(Span("f", 1, 8, 1, 13), lines) == lsp.Range(
        start=lsp.Position(line=0, character=8), end=lsp.Position(line=0, character=13)
    )
    empty = span_range(Span("f", 2, 3, 2, 3), lines)  # nothing under it: one character is still underlined
    assert (empty.start.character, empty.end.character) == (2, 3)
    assert span_range(None, lines).start == lsp.Position(line=0, character=0)


def test_cursor_context_follows_indentation_lists_and_unfinished_text():
    lines = [
        "top:",  # 0
        "  config:",  # 1
        "    items:",  # 2
        "      - instance_key: a",  # 3
        "        pass_type: BY_REFERENCE",  # 4
        "      - instance_key: ",  # 5
        "    wei",  # 6: not YAML yet
        "other: ${top.config.it",  # 7
    ]
    second_item = cursor_context(lines, 5, len(lines[5]))
    assert second_item.path == ("top", "config", "items", 1)
    assert (second_item.key, second_item.on_value, second_item.word) == ("instance_key", True, "")
    assert cursor_context(lines, 4, 10).path == ("top", "config", "items", 0)
    typing = cursor_context(lines, 6, 7)
    assert (typing.path, typing.key, typing.on_value, typing.word, typing.word_start) == (
        ("top", "config"), None, False, "wei", 4)
    interpolation = cursor_context(lines, 7, len(lines[7]))
    assert (interpolation.interpolation, interpolation.word) == ("top.config.it", "it")


def test_mapping_scalars_reads_the_siblings_of_a_line_in_its_own_list_item():
    lines = [
        "loaders:",
        "  - component_key: data_loader",
        "    variant_key: default",
        "    config: {}",
        "  - component_key: other",
        "    variant_key: ",
    ]
    assert mapping_scalars(lines, 2) == {"component_key": "data_loader", "variant_key": "default", "config": "{}"}
    assert mapping_scalars(lines, 5) == {"component_key": "other", "variant_key": ""}


def test_a_check_reads_the_unsaved_text_not_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)
    unsaved = CONFIG.replace("num_tokens: 8", "num_tokenz: 8")
    analysis = check(path.resolve(), {path.resolve(): unsaved})
    [error] = [d for d in analysis.diagnostics[path.resolve()] if d.severity == "error"]
    assert "unknown field 'num_tokenz'" in error.message
    assert (error.span.line, error.span.col) == (5, 5)
    on_disk = check(path.resolve(), {}).diagnostics[path.resolve()]
    assert [d.code for d in on_disk] == ["unused-component"]  # the file on disk has no error


def _composed(base, experiment, fixed=False):
    """A stand-in for a compile of a config composed from two files: an error in each (none when ``fixed``)."""

    def compile_config(path, **_):
        compiled = compile_file(path, sources={})
        compiled.diagnostics = [] if fixed else [
            Diagnostic("base's mistake", span=Span(str(base), 3, 1, 3, 5)),
            Diagnostic("experiment's mistake", span=Span(str(experiment), 1, 1, 1, 2), severity=WARNING),
        ]
        return compiled

    return compile_config


def test_diagnostics_are_grouped_and_published_by_the_file_that_holds_them(tmp_path):
    base, experiment = tmp_path / "base.yaml", tmp_path / "exp.yaml"
    base.write_text(CONFIG)
    experiment.write_text(CONFIG)
    analysis = check(experiment.resolve(), {}, compile_config=_composed(base, experiment))
    assert {f.name: [d.message for d in ds] for f, ds in analysis.diagnostics.items()} == {
        "base.yaml": ["base's mistake"], "exp.yaml": ["experiment's mistake"]}
    assert {base.resolve(), experiment.resolve()} <= analysis.files  # a change of either re-checks the experiment

    server = ConfigLanguageServer()
    published = []
    server.text_document_publish_diagnostics = published.append
    server.analyses[experiment.resolve()] = analysis
    server.publish_all(analysis)
    by_uri = {p.uri: [d.message for d in p.diagnostics] for p in published}
    assert by_uri == {base.resolve().as_uri(): ["base's mistake"],
                      experiment.resolve().as_uri(): ["experiment's mistake"]}

    published.clear()
    server.analyses[experiment.resolve()] = check(experiment.resolve(), {},
                                                  compile_config=_composed(base, experiment, fixed=True))
    server.publish_all(server.analyses[experiment.resolve()])
    assert {p.uri: p.diagnostics for p in published} == {base.resolve().as_uri(): [],
                                                         experiment.resolve().as_uri(): []}


def test_a_check_that_raises_becomes_one_diagnostic(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)

    def broken(path, **_):
        raise KeyError("bug")

    analysis = check(path.resolve(), {}, compile_config=broken)
    [diagnostic] = analysis.diagnostics[path.resolve()]
    assert diagnostic.code == CHECK_FAILED and "KeyError: 'bug'" in diagnostic.message
    assert (diagnostic.span.line, diagnostic.span.col) == (1, 1)


def test_field_completion_works_on_text_that_does_not_parse_yet():
    from modalities.lsp.features import complete
    from modalities.training.run import StepProfile, TrainingRunConfig
    from tests.lsp.conftest import QUICKSTART

    text = QUICKSTART.replace("  step_profile:\n    gradient_accumulation_steps: 1\n", "  step_profile:\n    gr\n", 1)
    lines = text.splitlines()
    line = lines.index("    gr")
    labels = {item.label for item in complete(None, lines, lsp.Position(line=line, character=6))}
    written = {"local_train_micro_batch_size", "sequence_length", "dp_degree"}
    assert "gradient_accumulation_steps" in labels and not labels & written
    assert labels == set(StepProfile.model_fields) - written

    top = QUICKSTART.replace("collate_fn:\n", "pro\ncollate_fn:\n", 1).splitlines()
    labels = {item.label for item in complete(None, top, lsp.Position(line=top.index("pro"), character=3))}
    assert "profiler" in labels and not {"settings", "app_state", "loss_fn"} & labels
    assert labels <= set(TrainingRunConfig.model_fields)


def test_a_composed_config_shows_each_mistake_in_its_own_file_and_reads_unsaved_bases(tmp_path):
    """The real composition (extends): the base's misspelt field is reported in the base at its line:col, the
    experiment's in the experiment; an unsaved fix of the base, given as a source, clears the base's error; a
    base none of whose values survive is still one of the files whose change re-checks the experiment."""
    base, experiment, empty = tmp_path / "base.yaml", tmp_path / "exp.yaml", tmp_path / "empty_base.yaml"
    base.write_text(CONFIG.replace("num_tokens: 8", "num_tokenz: 8"))  # line 5, column 5
    experiment.write_text("extends: [empty_base.yaml, base.yaml]\nm:\n  component_key: number_conversion\n"
                          "  variant_key: num_samples_from_num_tokens\n  config:\n    num_tokens: 8\n"
                          "    sequence_lenght: 2\n")  # line 7, column 5
    empty.write_text("m: {component_key: number_conversion}\n")  # replaced whole by the experiment's m
    analysis = check(experiment.resolve(), {})
    errors = {f.name: [(d.span.line, d.span.col, d.message) for d in ds if d.severity == "error"]
              for f, ds in analysis.diagnostics.items()}
    assert [(line, col) for line, col, _ in errors["base.yaml"]] == [(5, 5)]
    assert "num_tokenz" in errors["base.yaml"][0][2]
    assert [(line, col) for line, col, _ in errors["exp.yaml"]] == [(7, 5)]
    assert "sequence_lenght" in errors["exp.yaml"][0][2]
    assert {base.resolve(), experiment.resolve(), empty.resolve()} <= analysis.files

    fixed = check(experiment.resolve(), {base.resolve(): CONFIG})
    assert not [d for d in fixed.diagnostics.get(base.resolve(), []) if d.severity == "error"]
    assert [d.span.line for d in fixed.diagnostics[experiment.resolve()] if d.severity == "error"] == [7]

    missing = check(experiment.resolve(), {experiment.resolve(): "extends: nowhere.yaml\n"})
    [error] = missing.diagnostics[experiment.resolve()]
    assert "config file not found" in error.message and (error.span.line, error.span.col) == (1, 10)
