"""Contracts of modalities/config/load.py (stage 1): YAML text -> plain values and the position of every key and
value; what is refused (tags, duplicate keys, keys that are not text, limits at and one past) and where.
Positions are counted in the test's own text; the limits are lowered for the test so that "at the limit" and
"one past it" cost microseconds."""

from __future__ import annotations

import pytest

from modalities.config import load
from modalities.config.diagnostics import ConfigError
from modalities.config.load import (
    DELETE_TAG,
    REPLACE_TAG,
    load_document,
    load_text,
    load_value,
    not_utf8,
    read_config_text,
)
from modalities.config.spans import Span


def refused(text: str, **kw) -> list[tuple[str, str, str]]:
    """(code, message, file:line:col) of each error loading ``text``."""
    with pytest.raises(ConfigError) as e:
        load_text(text, "f.yaml", **kw)
    return [(d.code, d.message, str(d.span)) for d in e.value.diagnostics]


# --- values --------------------------------------------------------------------------------------------------------

VALUE_TABLE = [
    ("", {}),  # an empty file is an empty config
    ("# only a comment\n", {}),
    ("a: 1", {"a": 1}),
    ("a:", {"a": None}),
    ("a: [1, 2.5, x, null, true]", {"a": [1, 2.5, "x", None, True]}),
    ("a: {}\nb: []", {"a": {}, "b": []}),
    ("a: 0x1f\nb: 0o17\nc: 1_000\nd: 010", {"a": 31, "b": "0o17", "c": 1000, "d": 8}),  # YAML 1.1, as the reference
    ("a: yes\nb: on\nc: y", {"a": True, "b": True, "c": "y"}),  # YAML 1.1 booleans (tests/config/test_yaml11.py)
    ("a: 2001-12-14", {"a": "2001-12-14"}),  # dates stay text
    ("a: !!timestamp 2001-12-14", {"a": "2001-12-14"}),
    ("a: !!str 3\nb: !!int '3'\nc: !!float 1\nd: !!bool true\ne: !!null ''", {"a": "3", "b": 3, "c": 1.0, "d": True,
                                                                             "e": None}),
    ("a: !!str", {"a": ""}),
    ("=: a\nb: ['=']", {"=": "a", "b": ["="]}),  # a plain '=' key is text (OmegaConf); as a value it is an error
    ("1: a\n2: b", {1: "a", 2: "b"}),  # integer keys are kept
    ("--- \na: 1", {"a": 1}),  # one explicit document
]


@pytest.mark.parametrize("text, values", VALUE_TABLE)
def test_load_text_gives_plain_values(text, values):
    document = load_text(text, "f.yaml")
    assert document.values == values
    assert document.marks == {} and document.config_path is None


def test_every_key_and_value_has_its_position():
    text = "a:\n  b: [1, xy]\n  c: {d: 2}\n"
    sm = load_text(text, "f.yaml").source_map
    spans = {path: (s.line, s.col, s.end_line, s.end_col) for path, s in sm.values.items()}
    assert spans == {(): (1, 1, 4, 1), ("a",): (2, 3, 4, 1), ("a", "b"): (2, 6, 2, 13), ("a", "b", 0): (2, 7, 2, 8),
                     ("a", "b", 1): (2, 10, 2, 12), ("a", "c"): (3, 6, 3, 12), ("a", "c", "d"): (3, 10, 3, 11)}
    keys = {path: (s.line, s.col, s.end_col) for path, s in sm.keys.items()}
    assert keys == {("a",): (1, 1, 2), ("a", "b"): (2, 3, 4), ("a", "c"): (3, 3, 4), ("a", "c", "d"): (3, 7, 8)}
    assert all(s.file == "f.yaml" for s in sm.values.values())


def test_an_alias_is_a_copy_and_a_merge_fills_in_what_a_mapping_does_not_set():
    document = load_text("a: &x {k: [1]}\nb: *x\nc:\n  <<: *x\n  own: 2\n", "f.yaml")
    v = document.values
    assert v["b"] == {"k": [1]} and v["b"] is not v["a"] and v["b"]["k"] is not v["a"]["k"]
    assert v["c"] == {"own": 2, "k": [1]}
    # a merged key is positioned where the anchored mapping wrote it
    assert (document.source_map.keys[("c", "k")].line, document.source_map.keys[("c", "k")].col) == (1, 8)


@pytest.mark.parametrize("text, merged", [
    ("m: {a: 1}\nc: {<<: {a: 2}, a: 1}", {"a": 1}),  # the mapping's own key wins
    ("c: {<<: [{a: 1, b: 1}, {a: 2, c: 2}]}", {"a": 1, "b": 1, "c": 2}),  # in a list, the first source wins
    ("c: {<<: {a: 1}, b: 2}", {"a": 1, "b": 2}),
    ("c: {<<: []}", {}),
])
def test_merge_keys(text, merged):
    assert load_text(text, "f.yaml").values["c"] == merged


# --- what is refused, and where ----------------------------------------------------------------------------------

REFUSED_TABLE = [
    ("- 1\n- 2", [("not-a-mapping", "a config file must be a mapping of names to components", "f.yaml:1:1")]),
    ("3", [("not-a-mapping", "a config file must be a mapping of names to components", "f.yaml:1:1")]),
    ("null", [("not-a-mapping", "a config file must be a mapping of names to components", "f.yaml:1:1")]),
    ("a: 1\nb: 2\na: 3", [("duplicate-key", "duplicate key 'a' (first defined at line 1)", "f.yaml:3:1")]),
    # keys that YAML 1.1 reads as a float, null or boolean (OmegaConf would keep them; we refuse: quote them)
    ("1.5: a", [("yaml-scalar", "the key '1.5' is read as a float by YAML 1.1 rules (as Modalities reads it), not as "
                               "a name", "f.yaml:1:1")]),
    ("~: a", [("yaml-scalar", "the key '~' is read as a null by YAML 1.1 rules (as Modalities reads it), not as a "
                             "name", "f.yaml:1:1")]),
    ("on: a", [("yaml-scalar", "the key 'on' is read as a bool by YAML 1.1 rules (as Modalities reads it), not as a "
                              "name", "f.yaml:1:1")]),
    ("? [a]\n: b", [("", "mapping keys must be plain strings", "f.yaml:1:3")]),
    ("a: !!set {x}", [("yaml-tag", "YAML tag '!!set' is not allowed", "f.yaml:1:4")]),
    ("a: !!python/name:os.system", [("yaml-tag", "YAML tag '!!python/name:os.system' is not allowed", "f.yaml:1:4")]),
    ("a: !custom 3", [("yaml-tag", "YAML tag '!custom' is not allowed", "f.yaml:1:4")]),
    ("a: !delete", [("yaml-tag", "YAML tag '!delete' is not allowed", "f.yaml:1:4")]),  # only in a merged file
    ("a: !replace {b: 1}", [("yaml-tag", "YAML tag '!replace' is not allowed", "f.yaml:1:4")]),
    ("a: !!int abc", [("yaml-scalar", "'abc' is not a valid !!int (ValueError)", "f.yaml:1:4")]),
    ("a: {<<: 3}", [("yaml-merge", "'<<' merges only mappings", "f.yaml:1:9")]),
    ("a: {<<: [{b: 1}, [2]]}", [("yaml-merge", "'<<' merges only mappings", "f.yaml:1:18")]),
    ("a: 1\n---\nb: 2", [("yaml-documents", "a config file holds one YAML document; this is a second one (`---`)",
                          "f.yaml:2:1")]),
    ("a: &x [*x]", [("yaml-alias", "the alias *x refers to a node that contains it (a value cannot contain itself)",
                     "f.yaml:1:8")]),
    ("a: *x", [("yaml-alias", "the alias *x has no anchor &x before it", "f.yaml:1:4")]),
    ("a: 1\nb: \x07", [("yaml-syntax", "invalid YAML: unacceptable character #x0007: control characters are not "
                        "allowed", "f.yaml:2:4")]),
    # a merged mapping's bad key is reported where that mapping is written, not again where it is merged
    ("m: &m {1.5: a}\nc: {<<: *m, b: 1}", [("yaml-scalar", "the key '1.5' is read as a float by YAML 1.1 rules (as "
                                                           "Modalities reads it), not as a name", "f.yaml:1:8")]),
    ("a: [1, 2\nb: 3", [("yaml-syntax", "invalid YAML: while parsing a flow sequence did not find expected ',' or ']'",
                         "f.yaml:2:2")]),
    # every mistake of a file is reported at once
    ("a: !!int x\nb: !custom 1\nc: 1\nc: 2", [("yaml-scalar", "'x' is not a valid !!int (ValueError)", "f.yaml:1:4"),
                                               ("yaml-tag", "YAML tag '!custom' is not allowed", "f.yaml:2:4"),
                                               ("duplicate-key", "duplicate key 'c' (first defined at line 3)",
                                                "f.yaml:4:1")]),
]


@pytest.mark.parametrize("text, errors", REFUSED_TABLE)
def test_what_is_refused_is_said_where_it_stands(text, errors):
    assert refused(text) == errors


def test_the_hint_of_a_tag_says_where_merge_tags_belong():
    with pytest.raises(ConfigError) as e:
        load_text("a: !delete\nb: !custom 1", "f.yaml")
    first, second = e.value.diagnostics
    assert first.hint == "!delete belongs to a file merged onto others (see docs/config-format.md)"
    assert second.hint == "configs are plain data: remove the tag (tags that construct Python objects are never run)"


# --- merge tags: accepted only when asked for -----------------------------------------------------------------------

MERGE_TAG_TABLE = [
    ("a: !delete", {"a": None}, {("a",): DELETE_TAG}),
    ("a: !delete ~", {"a": None}, {("a",): DELETE_TAG}),
    ("a: !delete null", {"a": None}, {("a",): DELETE_TAG}),
    ("a:\n  b: !delete", {"a": {"b": None}}, {("a", "b"): DELETE_TAG}),
    ("a: !replace {b: 1}", {"a": {"b": 1}}, {("a",): REPLACE_TAG}),
    ("a: !replace [1, x]", {"a": [1, "x"]}, {("a",): REPLACE_TAG}),
    ("a: !replace 3", {"a": 3}, {("a",): REPLACE_TAG}),  # a scalar is read as its plain self
    ("a: !replace x", {"a": "x"}, {("a",): REPLACE_TAG}),
    ("a: 1", {"a": 1}, {}),
]


@pytest.mark.parametrize("text, values, marks", MERGE_TAG_TABLE)
def test_merge_tags_are_recorded_in_marks(text, values, marks):
    document = load_text(text, "f.yaml", merge_tags=True)
    assert document.values == values and document.marks == marks


@pytest.mark.parametrize("text", ["a: !delete x", "a: !delete [1]", "a: !delete {b: 1}", "a: !delete 0"])
def test_delete_takes_no_value(text):
    assert refused(text, merge_tags=True) == [
        ("merge-tag", "!delete takes no value: it removes the key it is written under", "f.yaml:1:4")]


# --- limits: at the limit it loads, one past it is refused where it goes over ---------------------------------------


@pytest.mark.parametrize("limit, text, error", [
    (3, "a: 1", None),  # mapping, key, value: 3
    (2, "a: 1", "f.yaml:1:4"),  # the third value goes over
    (5, "a: 1\nb: 2", None),
    (4, "a: 1\nb: 2", "f.yaml:2:4"),
    (4, "a: [1]", None),  # mapping, key, list, item
    (3, "a: [1]", "f.yaml:1:5"),
    (5, "a: &x 1\nb: *x", None),  # an alias is a value
    (4, "a: &x 1\nb: *x", "f.yaml:2:4"),
])
def test_the_number_of_values(monkeypatch, limit, text, error):
    monkeypatch.setattr(load, "MAX_VALUES", limit)
    if error is None:
        load_text(text, "f.yaml")
    else:
        assert refused(text) == [("limit", f"more than {limit:,} values; a config may hold at most that many", error)]


@pytest.mark.parametrize("before, error", [(0, None), (1, "f.yaml:1:4")])
def test_values_read_from_other_files_count_towards_the_same_limit(monkeypatch, before, error):
    monkeypatch.setattr(load, "MAX_VALUES", 3)
    if error is None:
        load_text("a: 1", "f.yaml", values_before=before)
    else:
        assert refused("a: 1", values_before=before) == [
            ("limit", "more than 3 values in all the files composed; a config may hold at most that many", error)]


@pytest.mark.parametrize("text, error", [
    ("a: {b: 1}", None),  # two levels
    ("a: [1]", None),
    ("a: {b: {c: 1}}", "f.yaml:1:8"),  # the third level, where it opens
    ("a: [[1]]", "f.yaml:1:5"),
    ("a: {b: [1]}", "f.yaml:1:8"),
])
def test_the_nesting_depth(monkeypatch, text, error):
    monkeypatch.setattr(load, "MAX_DEPTH", 2)
    if error is None:
        load_text(text, "f.yaml")
    else:
        assert refused(text) == [("limit", "nested more than 2 levels deep", error)]


@pytest.mark.parametrize("text, digits", [("a: 123", None), ("a: -123", None), ("a: 1234", 4), ("a: 0x1f", 4),
                                          ("a: !!str 1234", None)])
def test_the_digits_of_an_integer(monkeypatch, text, digits):
    monkeypatch.setattr(load, "MAX_INT_DIGITS", 3)
    if digits is None:
        load_text(text, "f.yaml")
    else:
        assert refused(text) == [("yaml-scalar", f"an integer of {digits} digits is too long (at most 3)",
                                  "f.yaml:1:4")]


LAUGHS = "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nd: &d [*c, *c]\n"  # d stands for 31 values


@pytest.mark.parametrize("text, message, where", [
    # the whole expands to 61 values; no single alias stands for more than 20: the biggest one is named
    (LAUGHS, "through YAML aliases the config expands to more than 20 values; this alias alone stands for 15",
     "f.yaml:4:8"),
    # the first alias that alone stands for more than the limit
    (LAUGHS + "e: [*d]\n", "through YAML aliases the config expands to more than 20 values; this alias alone "
     "stands for 31", "f.yaml:5:5"),
])
def test_the_values_aliases_expand_to(monkeypatch, text, message, where):
    monkeypatch.setattr(load, "MAX_VALUES", 20)
    assert refused(text) == [("limit", message, where)]


def test_the_count_of_what_an_alias_stands_for_stops_at_ten_times_the_limit(monkeypatch):
    # e holds 13 copies of d (31 values each): 404 values, counted as 400 (ten times the limit of 40); 35 events
    monkeypatch.setattr(load, "MAX_VALUES", 40)
    text = LAUGHS + "e: &e [" + "*d, " * 12 + "*d]\nz: [*e]\n"
    assert refused(text) == [("limit", "through YAML aliases the config expands to more than 40 values; this alias "
                              "alone stands for more than 400", "f.yaml:6:5")]
    monkeypatch.setattr(load, "MAX_VALUES", 41)  # ten times: 410, more than e's 404
    assert refused(text) == [("limit", "through YAML aliases the config expands to more than 41 values; this alias "
                              "alone stands for 404", "f.yaml:6:5")]


@pytest.mark.parametrize("limit, error", [(16, None), (15, "f.yaml:2:4")])
def test_aliases_within_the_value_limit_load(monkeypatch, limit, error):
    # the mapping, 3 keys, and [1, 2, 3] (4 values) three times: 16 values once expanded (10 as written)
    text = "a: &x [1, 2, 3]\nb: *x\nc: *x"
    monkeypatch.setattr(load, "MAX_VALUES", limit)
    if error is None:
        assert load_text(text, "f.yaml").values["c"] == [1, 2, 3]
    else:
        assert refused(text)[0][2] == error


@pytest.mark.parametrize("depth, error", [(4, None), (3, "f.yaml:2:8")])
def test_the_depth_aliases_expand_to(monkeypatch, depth, error):
    text = "a: &x {b: {c: 1}}\nd: {e: *x}"  # d's value is 3 levels once x is put in; with the top level, 4
    monkeypatch.setattr(load, "MAX_DEPTH", depth)
    if error is None:
        assert load_text(text, "f.yaml").values["d"] == {"e": {"b": {"c": 1}}}
    else:
        assert refused(text) == [("limit", f"through YAML aliases the config is nested more than {depth} levels deep",
                                  error)]


# --- one value (--set, oc.decode) ------------------------------------------------------------------------------------

LOAD_VALUE_TABLE = [("", None), ("3", 3), ("x", "x"), ("[1, {a: 2}]", [1, {"a": 2}]), ("null", None), ("'3'", "3"),
                    ("2.5e-3", 0.0025)]


@pytest.mark.parametrize("text, value", LOAD_VALUE_TABLE)
def test_load_value(text, value):
    assert load_value(text, "<v>") == value


def test_load_value_errors_stand_at_the_span_given():
    span = Span("<--set>", 1, 5, 1, 12, text="a.b=!!int x")
    for text in ("!!int x", "&a [*a]", "[1", "!custom 1"):
        with pytest.raises(ConfigError) as e:
            load_value(text, "<v>", span)
        assert [d.span for d in e.value.diagnostics] == [span], text
    with pytest.raises(ConfigError) as e:
        load_value("[1", "<v>")
    assert e.value.diagnostics[0].span.file == "<v>"


@pytest.mark.parametrize("extra", [0, 1])
def test_load_value_length_limit(monkeypatch, extra):
    monkeypatch.setattr(load, "MAX_CONFIG_BYTES", 5)
    text = "1" * (5 + extra)
    if extra:
        with pytest.raises(ConfigError, match="a value of 6 characters is too long"):
            load_value(text, "<v>")
    else:
        assert load_value(text, "<v>") == 11111


def test_load_value_within_the_nesting_limit(monkeypatch):
    monkeypatch.setattr(load, "MAX_DEPTH", 2)
    assert load_value("[[1]]", "<v>") == [[1]]
    with pytest.raises(ConfigError, match="nested more than 2 levels deep"):
        load_value("[[[1]]]", "<v>")


# --- files ----------------------------------------------------------------------------------------------------------


def test_load_document_reads_the_file_and_keeps_its_resolved_path(tmp_path, monkeypatch):
    (tmp_path / "c.yaml").write_text("a: 1\n")
    monkeypatch.chdir(tmp_path)
    document = load_document("c.yaml")
    assert document.values == {"a": 1}
    assert document.config_path == (tmp_path / "c.yaml").resolve()
    assert document.source_map.values[("a",)].file == "c.yaml"


@pytest.mark.parametrize("extra", [0, 1])
def test_the_size_of_a_file(tmp_path, monkeypatch, extra):
    monkeypatch.setattr(load, "MAX_CONFIG_BYTES", 8)
    path = tmp_path / "c.yaml"
    path.write_bytes(b"a: 12345" + b"6" * extra)
    if extra:
        with pytest.raises(ConfigError) as e:
            read_config_text(path)
        (d,) = e.value.diagnostics
        assert (d.code, d.message) == ("limit", f"{path} is 9 bytes; a config may be at most 8")
    else:
        assert read_config_text(path) == "a: 12345"


@pytest.mark.parametrize("text, fits", [("a: 1234", True), ("a: 1235", True), ("a: 12é", True), ("a: 123é", False)])
def test_the_size_of_a_text_given_for_a_file_counts_its_utf8_bytes(tmp_path, monkeypatch, text, fits):
    monkeypatch.setattr(load, "MAX_CONFIG_BYTES", 7)
    path = tmp_path / "c.yaml"  # need not exist
    if fits:
        assert read_config_text(path, {path.resolve(): text}) == text
    else:
        with pytest.raises(ConfigError, match="is 8 bytes; a config may be at most 7"):
            read_config_text(path, {path.resolve(): text})


def test_a_text_given_for_another_file_leaves_this_one_read_from_disk(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("on: disk\n")
    assert read_config_text(path, {(tmp_path / "other.yaml").resolve(): "x: 1"}) == "on: disk\n"
    assert read_config_text(path, {}) == "on: disk\n"
    assert read_config_text(path, {path.resolve(): ""}) == ""  # an empty buffer is a text too


def test_a_file_that_cannot_be_read(tmp_path):
    with pytest.raises(ConfigError) as e:
        read_config_text(tmp_path / "nope.yaml")
    (d,) = e.value.diagnostics
    assert (d.code, d.message, d.hint) == ("config-file", f"config file not found: {tmp_path / 'nope.yaml'}",
                                           "check the path")
    with pytest.raises(ConfigError) as e:
        read_config_text(tmp_path)
    (d,) = e.value.diagnostics
    assert (d.code, d.message) == ("config-file", f"cannot read config file {tmp_path}: Is a directory")


NOT_UTF8_TABLE = [
    (b"\xff", 1, 1, "\udcff"),
    (b"a: \xff", 1, 4, "a: \udcff"),
    (b"a: 1\nb: \xff\nc: 2\n", 2, 4, "b: \udcff"),
    (b"a: 1\n\xff", 2, 1, "\udcff"),
    (b"a: \xc3\xa9\xff x", 1, 5, "a: \xe9\udcff x"),  # a character of two bytes is one column
]


@pytest.mark.parametrize("data, line, col, text", NOT_UTF8_TABLE)
def test_a_file_that_is_not_utf8_is_an_error_at_its_first_bad_byte(tmp_path, data, line, col, text):
    path = tmp_path / "c.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as e:
        read_config_text(path)
    (d,) = e.value.diagnostics
    assert d.code == "config-file"
    assert d.message == "the file is not UTF-8 text: byte 0xff cannot be decoded (invalid start byte)"
    assert d.span == Span(str(path), line, col, line, col + 1, text=text)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        assert not_utf8("n", data, error).span == Span("n", line, col, line, col + 1, text=text)
