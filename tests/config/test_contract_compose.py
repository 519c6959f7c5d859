"""Contracts of modalities/config/compose.py: the merge rules as a table of (base, overlay) -> merged config worked
out by hand, each flag of a merge both ways (tagged or not), where each merged value's position comes from, and
the limits across files at and one past them (lowered for the test)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from modalities.config import compose as compose_module
from modalities.config.compose import compose_files
from modalities.config.diagnostics import WARNING, ConfigError
from modalities.config.load import load_text


def files(tmp_path: Path, **texts: str) -> Path:
    for name, text in texts.items():
        (tmp_path / f"{name}.yaml").write_text(textwrap.dedent(text))
    return tmp_path / f"{list(texts)[-1]}.yaml"


def merged(tmp_path: Path, base: str, overlay: str):
    (tmp_path / "base.yaml").write_text(base)
    (tmp_path / "exp.yaml").write_text("extends: base.yaml\n" + overlay)
    return compose_files(tmp_path / "exp.yaml")


def refused(*args, **kw) -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigError) as e:
        compose_files(*args, **kw)
    return [(d.code, d.message, f"{Path(d.span.file).name}:{d.span.line}:{d.span.col}" if d.span else None)
            for d in e.value.diagnostics]


K = "component_key: k"
MERGE_TABLE = [
    # mappings merge key by key
    ("a: {x: 1, y: 2}", "a: {y: 3}", {"a": {"x": 1, "y": 3}}),
    ("a: {x: {p: 1, q: 2}}", "a: {x: {q: 3}, z: 4}", {"a": {"x": {"p": 1, "q": 3}, "z": 4}}),
    ("a: {x: 1}", "a: {}", {"a": {"x": 1}}),  # an empty mapping changes nothing
    ("a: {x: 1}", "b: 2", {"a": {"x": 1}, "b": 2}),
    # lists and scalars replace
    ("l: [1, 2, 3]", "l: [9]", {"l": [9]}),
    ("l: [1, 2]", "l: []", {"l": []}),
    ("l: [{a: 1}]", "l: [{b: 2}]", {"l": [{"b": 2}]}),
    ("a: 1", "a: null", {"a": None}),
    ("a: {x: 1}", "a: 3", {"a": 3}),
    ("a: 3", "a: {x: 1}", {"a": {"x": 1}}),
    ("a: [1]", "a: {x: 1}", {"a": {"x": 1}}),
    # a component: the same variant merges; another variant is replaced whole, keeping its component_key
    (f"c: {{{K}, variant_key: a, config: {{x: 1}}}}", "c: {variant_key: a, config: {y: 2}}",
     {"c": {"component_key": "k", "variant_key": "a", "config": {"x": 1, "y": 2}}}),
    (f"c: {{{K}, variant_key: a, config: {{x: 1}}}}", "c: {config: {y: 2}}",
     {"c": {"component_key": "k", "variant_key": "a", "config": {"x": 1, "y": 2}}}),
    (f"c: {{{K}, variant_key: a, config: {{x: 1}}}}", "c: {variant_key: b, config: {y: 2}}",
     {"c": {"component_key": "k", "variant_key": "b", "config": {"y": 2}}}),
    (f"c: {{{K}, variant_key: a, config: {{x: 1}}}}", "c: {variant_key: b}",
     {"c": {"component_key": "k", "variant_key": "b"}}),
    (f"c: {{{K}, variant_key: a, config: {{x: 1}}}}", "c: {component_key: k2, variant_key: a}",
     {"c": {"component_key": "k2", "variant_key": "a"}}),
    (f"c: {{{K}, variant_key: a, config: {{x: 1}}}}", f"c: {{{K}, variant_key: a, config: {{y: 2}}}}",
     {"c": {"component_key": "k", "variant_key": "a", "config": {"x": 1, "y": 2}}}),  # the same kind: merged
    # a component that becomes a reference, and the reverse: replaced
    (f"c: {{{K}, variant_key: a, config: {{x: 1}}}}", "c: {instance_key: other}", {"c": {"instance_key": "other"}}),
    ("r: {instance_key: x, pass_type: BY_REFERENCE}", f"r: {{{K}, variant_key: v}}",
     {"r": {"component_key": "k", "variant_key": "v"}}),
    ("r: {instance_key: x, pass_type: BY_REFERENCE}", "r: {instance_key: y}",
     {"r": {"instance_key": "y", "pass_type": "BY_REFERENCE"}}),  # a reference to another: merged
    # a new component where there was none
    ("a: 1", f"c: {{{K}, variant_key: v}}", {"a": 1, "c": {"component_key": "k", "variant_key": "v"}}),
    # !delete removes a key; !replace sets a mapping as written
    ("a: {x: 1, y: 2}", "a:\n  x: !delete", {"a": {"y": 2}}),
    ("a: {x: 1}\nb: 2", "a: !delete", {"b": 2}),
    ("a: {x: 1, y: 2}", "a: !replace {z: 3}", {"a": {"z": 3}}),
    ("a: {x: 1}", "a: !replace {}", {"a": {}}),
    (f"c: {{{K}, variant_key: a, config: {{x: 1}}}}", "c: !replace {variant_key: b}", {"c": {"variant_key": "b"}}),
    ("a: [1]", "a: !replace [2]", {"a": [2]}),
    ("a: 1", "a: !replace 2", {"a": 2}),
]


@pytest.mark.parametrize("base, overlay, expected", [row for row in MERGE_TABLE if row[2] is not None])
def test_the_merge_rules(tmp_path, base, overlay, expected):
    document = merged(tmp_path, base + "\n", overlay + "\n")
    assert document.values == expected
    assert list(document.values) == list(expected)  # the base's keys first, new ones after
    if "c" in expected and "component_key" in expected["c"]:
        assert next(iter(document.values["c"])) == "component_key"


def test_a_single_file_is_read_as_load_text_reads_it(tmp_path):
    text = "a: {x: [1, 2]}\nb: &y 3\nc: *y\n"
    path = files(tmp_path, only=text)
    document = compose_files(path)
    loaded = load_text(text, str(path))
    assert document.values == loaded.values
    assert document.source_map.values == loaded.source_map.values and document.source_map.keys == loaded.source_map.keys
    assert document.config_path == path.resolve() and [f.name for f in document.files] == [str(path)]
    assert document.files[0].given and document.warnings == []


def test_each_value_is_positioned_in_the_file_that_wrote_it(tmp_path):
    document = merged(tmp_path, "a: {x: 1, y: 2}\nl: [1, 2]\nc: {component_key: k, variant_key: a}\n",
                      "a: {y: 3}\nl: [9]\nc: {variant_key: b}\n")
    sm = document.source_map
    where = {path: (Path(s.file).name, s.line, s.col) for path, s in sm.values.items()}
    assert where[("a", "x")] == ("base.yaml", 1, 8)
    assert where[("a", "y")] == ("exp.yaml", 2, 8)
    assert where[("l", 0)] == ("exp.yaml", 3, 5)
    assert ("l", 1) not in where  # the replaced list's items are gone
    assert where[("c", "variant_key")] == ("exp.yaml", 4, 18)
    assert where[("c", "component_key")] == ("base.yaml", 3, 20)  # kept from the base, with its position
    assert ("extends",) not in where and ("extends",) not in sm.keys


def test_several_files_merge_left_to_right_each_after_what_it_extends(tmp_path):
    files(tmp_path, common="a: 0\nb: 0\nc: 0\nd: 0\n", left="extends: common.yaml\na: 1\nb: 1\n",
          right="extends: common.yaml\nb: 2\nc: 2\n", top="extends: [left.yaml, right.yaml]\nc: 3\n")
    document = compose_files(tmp_path / "top.yaml")
    assert document.values == {"a": 1, "b": 2, "c": 3, "d": 0}
    assert [Path(f.name).name for f in document.files] == ["common.yaml", "left.yaml", "right.yaml", "top.yaml"]
    assert [f.given for f in document.files] == [False, False, False, True]
    both = compose_files([tmp_path / "left.yaml", tmp_path / "right.yaml"])  # the command line does the same
    assert both.values == {"a": 1, "b": 2, "c": 2, "d": 0}
    assert both.config_path == (tmp_path / "right.yaml").resolve()  # the last file given
    assert [f.given for f in both.files] == [False, True, True]
    assert compose_files(str(tmp_path / "left.yaml")).values == {"a": 1, "b": 1, "c": 0, "d": 0}  # a str path


def test_no_file_is_a_value_error():
    with pytest.raises(ValueError, match="compose_files needs at least one config file"):
        compose_files([])


@pytest.mark.parametrize("overlay, errors", [
    ("a:\n  zz: !delete", [("extends", "nothing to delete: 'a.zz' is not in the files this one is merged onto",
                            "exp.yaml:3:3")]),
    ("zz: !delete", [("extends", "nothing to delete: 'zz' is not in the files this one is merged onto",
                      "exp.yaml:2:1")]),
    ("new:\n  k: !delete", [("extends", "nothing to delete: 'new.k' is not in the files this one is merged onto",
                             "exp.yaml:3:3")]),
    ("a: !replace\n  k: !delete", [("extends", "nothing to delete: 'a.k' is not in the files this one is merged "
                                    "onto", "exp.yaml:3:3")]),
    ("l: [1, !delete ]", [("extends", "!delete removes a key of a mapping; a list is replaced whole",
                           "exp.yaml:2:8")]),
])
def test_what_a_merge_refuses(tmp_path, overlay, errors):
    (tmp_path / "base.yaml").write_text("a: {x: 1}\nl: [1]\n")
    (tmp_path / "exp.yaml").write_text("extends: base.yaml\n" + overlay + "\n")
    assert refused(tmp_path / "exp.yaml") == errors


@pytest.mark.parametrize("tag", ["!delete", "!replace base.yaml"])
def test_extends_takes_no_merge_tag(tmp_path, tag):
    (tmp_path / "base.yaml").write_text("b: 1\n")
    (tmp_path / "exp.yaml").write_text(f"a: 1\nextends: {tag}\n")
    assert refused(tmp_path / "exp.yaml") == [
        ("extends", "!delete and !replace do not apply here: extends itself is not merged", "exp.yaml:2:10")]


@pytest.mark.parametrize("overlay, hint", [("a:\n  xx: !delete", "did you mean 'x'?"),
                                           ("a:\n  zzzz: !delete", "remove the line")])
def test_nothing_to_delete_suggests_the_close_key(tmp_path, overlay, hint):
    (tmp_path / "base.yaml").write_text("a: {x: 1}\n")
    (tmp_path / "exp.yaml").write_text("extends: base.yaml\n" + overlay + "\n")
    with pytest.raises(ConfigError) as e:
        compose_files(tmp_path / "exp.yaml")
    assert e.value.diagnostics[0].hint == hint


def test_a_whole_file_cannot_be_deleted_or_replaced(tmp_path):
    (tmp_path / "base.yaml").write_text("a: 1\n")
    (tmp_path / "exp.yaml").write_text("!replace {extends: base.yaml, b: 1}\n")
    assert [m for _, m, _ in refused(tmp_path / "exp.yaml")] == [
        "a whole file cannot be deleted or replaced; tag its keys"]


@pytest.mark.parametrize("existing, added, warned", [
    ("abcdefg", "abcdefh", True),  # 12/14 alike: above the cut-off
    ("learning_rate", "learning_rte", True),
    ("abcd", "abce", False),  # 6/8: below it
    ("abcdefg", "abcdefg_extra", False),
])
def test_a_new_key_beside_a_very_similar_inherited_one_is_a_warning(tmp_path, existing, added, warned):
    document = merged(tmp_path, f"{existing}: 1\n", f"{added}: 2\n")
    found = [(d.severity, d.code, d.message) for d in document.warnings]
    if warned:
        assert found == [(WARNING, "extends-new-key", f"'{added}' is new here (the files this one is merged onto have "
                          f"no such key), so it changes nothing of theirs; did you mean '{existing}'?")]
    else:
        assert found == []


def test_a_new_component_or_a_key_in_a_new_mapping_is_not_warned_about(tmp_path):
    document = merged(tmp_path, "model_a: {component_key: k, variant_key: v}\n",
                      "model_b: {component_key: k, variant_key: v}\n")
    assert document.warnings == []


@pytest.mark.parametrize("extends, errors", [
    ("3", [("extends", "3 is not a file name", "exp.yaml:1:10")]),
    ("''", [("extends", "'' is not a file name", "exp.yaml:1:10")]),
    ("[base.yaml, 3]", [("extends", "3 is not a file name", "exp.yaml:1:22")]),
    ("[base.yaml, [x]]", [("extends", "['x'] is not a file name", "exp.yaml:1:22")]),
    ("nope.yaml", [("extends", "config file not found: nope.yaml", "exp.yaml:1:10")]),
    ("exp.yaml", [("extends", "extends cycle: exp.yaml -> exp.yaml", "exp.yaml:1:10")]),
    ("[]", None),
    ("[base.yaml, base.yaml]", None),  # once
])
def test_what_extends_may_name(tmp_path, monkeypatch, extends, errors):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text("b: 1\n")
    (tmp_path / "exp.yaml").write_text(f"extends: {extends}\ne: 1\n")
    if errors is None:
        assert set(compose_files("exp.yaml").values) <= {"b", "e"}
    else:
        assert refused("exp.yaml") == errors


def test_a_missing_file_given_by_the_caller_is_a_config_file_error(tmp_path):
    assert refused(tmp_path / "nope.yaml") == [("config-file", f"config file not found: {tmp_path / 'nope.yaml'}",
                                                None)]
    assert refused(tmp_path) == [("config-file", f"{tmp_path} is a directory, not a config file", None)]


@pytest.mark.parametrize("limit, fits", [(3, True), (2, False)])
def test_the_number_of_files(tmp_path, monkeypatch, limit, fits):
    monkeypatch.setattr(compose_module, "MAX_CONFIG_FILES", limit)
    files(tmp_path, c="c: 1\n", b="extends: c.yaml\nb: 1\n", a="extends: b.yaml\na: 1\n")
    if fits:
        assert compose_files(tmp_path / "a.yaml").values == {"c": 1, "b": 1, "a": 1}
    else:
        assert refused(tmp_path / "a.yaml") == [
            ("extends", "a config may be composed of at most 2 files; this would be one more", "b.yaml:1:10")]


@pytest.mark.parametrize("limit, error", [
    (27, None),  # 19 + 8 bytes: at the limit
    (26, ("base.yaml is 8 bytes and the files composed before it 19; a config may be at most 26 bytes in all",
          "exp.yaml:1:10")),
    (19, ("base.yaml is 8 bytes and the files composed before it 19; a config may be at most 19 bytes in all",
          "exp.yaml:1:10")),
    (18, ("exp.yaml is 19 bytes; a config may be at most 18 bytes", None)),  # the first file alone
])
def test_the_bytes_of_all_files(tmp_path, monkeypatch, limit, error):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(compose_module, "MAX_CONFIG_BYTES", limit)
    (tmp_path / "base.yaml").write_bytes(b"b: 1234\n")  # 8 bytes
    (tmp_path / "exp.yaml").write_bytes(b"extends: base.yaml\n")  # 19 bytes
    if error is None:
        assert compose_files("exp.yaml").values == {"b": 1234}
    else:
        assert refused("exp.yaml") == [("limit", *error)]


@pytest.mark.parametrize("limit, fits", [(10, True), (9, False)])
def test_the_bytes_of_a_text_given_for_a_file(tmp_path, monkeypatch, limit, fits):
    monkeypatch.setattr(compose_module, "MAX_CONFIG_BYTES", limit)
    path = tmp_path / "unsaved.yaml"  # only in the editor
    text = "a: 'éé'\n"  # 8 characters, 10 bytes
    if fits:
        assert compose_files(path, sources={path: text}).values == {"a": "éé"}
    else:
        assert refused(path, sources={path: text}) == [
            ("limit", f"{path} is 10 bytes; a config may be at most 9 bytes", None)]


def test_errors_of_every_file_are_raised_together_with_the_files_read(tmp_path):
    files(tmp_path, a="x: [1\n", b="y: 1\ny: 2\n", exp="extends: [a.yaml, b.yaml, c.yaml]\n")
    with pytest.raises(ConfigError) as e:
        compose_files(tmp_path / "exp.yaml")
    assert sorted((Path(d.span.file).name, d.code) for d in e.value.diagnostics) == [
        ("a.yaml", "yaml-syntax"), ("b.yaml", "duplicate-key"), ("exp.yaml", "extends")]
    assert [Path(f.name).name for f in e.value.files] == ["a.yaml", "b.yaml", "exp.yaml"]


def _loop(tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")


def _directory(tmp_path):
    (tmp_path / "base.yaml").mkdir()


def _fifo(tmp_path):
    import os

    os.mkfifo(tmp_path / "base.yaml")


def _latin1(tmp_path):
    (tmp_path / "base.yaml").write_bytes(b"a: caf\xe9\n")


@pytest.mark.parametrize("make, extends, message", [
    (_loop, "loop", "cannot read config file loop: a symlink loop"),
    (_directory, "base.yaml", "base.yaml is a directory, not a config file"),
    (_fifo, "base.yaml", "base.yaml is not a regular file"),
])
def test_a_base_that_cannot_be_read_is_an_error_at_the_entry_naming_it(tmp_path, monkeypatch, make, extends, message):
    monkeypatch.chdir(tmp_path)
    make(tmp_path)
    (tmp_path / "exp.yaml").write_text(f"extends: {extends}\n")
    assert refused("exp.yaml") == [("extends", message, "exp.yaml:1:10")]


def test_a_base_that_is_not_utf8_is_an_error_at_its_byte_like_a_file_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _latin1(tmp_path)  # "a: caf" is 6 characters: the byte 0xe9 is column 7 of line 1
    (tmp_path / "exp.yaml").write_text("extends: base.yaml\n")
    expected = [("config-file", "the file is not UTF-8 text: byte 0xe9 cannot be decoded (invalid continuation "
                 "byte)", "base.yaml:1:7")]
    assert refused("exp.yaml") == expected
    assert refused("base.yaml") == expected


def test_a_file_given_that_is_not_utf8_is_an_error_at_its_byte(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_bytes(b"a: 1\nb: caf\xe9\n")
    assert refused("c.yaml") == [("config-file", "the file is not UTF-8 text: byte 0xe9 cannot be decoded (invalid "
                                  "continuation byte)", "c.yaml:2:7")]


def test_a_stream_given_is_read_only_up_to_the_limit(monkeypatch):
    monkeypatch.setattr(compose_module, "MAX_CONFIG_BYTES", 10)
    assert refused("/dev/zero") == [("limit", "/dev/zero is more than 10 bytes; a config may be at most 10 bytes",
                                     None)]


def test_a_first_file_with_merge_tags_has_nothing_to_delete(tmp_path):
    (tmp_path / "c.yaml").write_text("a: 1\nb: !delete\n")
    assert refused(tmp_path / "c.yaml") == [
        ("extends", "nothing to delete: 'b' is not in the files this one is merged onto", "c.yaml:2:1")]
    (tmp_path / "r.yaml").write_text("a: !replace {x: 1}\n")
    assert compose_files(tmp_path / "r.yaml").values == {"a": {"x": 1}}
