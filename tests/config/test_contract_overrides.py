"""Contracts of modalities/config/overrides.py (``--set dotted.path=value``): how a value is read, which flags are
refused and how, where the set value is positioned, and where a path leads, compared on drawn documents and
paths with a straightforward re-implementation of the path rules written in this test."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modalities.config import overrides
from modalities.config.diagnostics import ConfigError
from modalities.config.load import Document, load_text
from modalities.config.overrides import apply_overrides, parse_override_value
from modalities.config.spans import OVERRIDE_FILE, SourceMap, Span, get_at

PARSE_TABLE = [
    ("", ""),  # nothing after '=': the empty text
    ("   ", ""),
    ("3", 3),
    (" 3 ", 3),
    ("-1", -1),
    ("3e-4", 0.0003),
    ("2.5", 2.5),
    ("true", True),
    ("false", False),
    ("yes", True),  # YAML 1.1, as OmegaConf.from_dotlist reads a value
    ("010", 8),
    ("1:30", 90),
    ("y", "y"),
    ("null", None),
    ("~", None),
    ("x", "x"),
    ("'3'", "3"),  # quoted: text
    ('"a b"', "a b"),
    ("[1, 2]", [1, 2]),
    ("[]", []),
    ("{a: 1}", {"a": 1}),
    ("a: 1", {"a": 1}),
    ("a: b: c", "a: b: c"),  # not YAML: the text as written
    ("[1", "[1"),
    ("{a", "{a"),
    ("a=b", "a=b"),
    ("${x.y}", "${x.y}"),  # resolved later, with the rest of the config
]


@pytest.mark.parametrize("text, value", PARSE_TABLE)
def test_parse_override_value(text, value):
    assert parse_override_value(text) == value
    assert type(parse_override_value(text)) is type(value)


@pytest.mark.parametrize("text, message", [
    ("!!int x", "'x' is not a valid !!int (ValueError)"),
    ("!custom 1", "YAML tag '!custom' is not allowed"),
    ("&a [*a]", "the alias *a refers to a node that contains it (a value cannot contain itself)"),
    ("!!python/name:os.system", "YAML tag '!!python/name:os.system' is not allowed"),
])
def test_a_value_that_yaml_reads_but_a_config_must_not_hold_is_refused_at_the_span(text, message):
    span = Span(OVERRIDE_FILE, 1, 3, 1, 3 + len(text), text="a=" + text)
    with pytest.raises(ConfigError) as e:
        parse_override_value(text, span)
    assert [(d.message, d.span) for d in e.value.diagnostics] == [(message, span)]


CONFIG = "lst: [10, 20, 30]\nm: {a: 1, b: [1, 2], '7': seven, 9: nine, '01': one}\ns: text\nn: null\n"


def applied(*flags: str):
    document = load_text(CONFIG, "f.yaml")
    return document, apply_overrides(document, flags)


SET_TABLE = [
    ("lst.0=5", ("lst",), [5, 20, 30]),  # the first item
    ("lst.2=5", ("lst",), [10, 20, 5]),  # the last
    ("lst=[1]", ("lst",), [1]),  # the whole list
    ("m.a=2", ("m", "a"), 2),
    ("m.7=sieben", ("m",), {"a": 1, "b": [1, 2], "7": "sieben", 9: "nine", "01": "one"}),  # the key "7"
    ("m.9=neun", ("m",), {"a": 1, "b": [1, 2], "7": "seven", 9: "neun", "01": "one"}),  # the key 9
    ("m.01=eins", ("m",), {"a": 1, "b": [1, 2], "7": "seven", 9: "nine", "01": "eins"}),  # the key "01" as written
    ("m.1=new", ("m",), {"a": 1, "b": [1, 2], "7": "seven", 9: "nine", "01": "one", "1": "new"}),
    ("m.b.1=x", ("m", "b"), [1, "x"]),
    ("m.b.0=[5, 6]", ("m", "b"), [[5, 6], 2]),
    ("new=1", ("new",), 1),
    ("new.branch.leaf=1", ("new",), {"branch": {"leaf": 1}}),  # missing branches are made
    ("m.new.0=1", ("m", "new"), {"0": 1}),  # a digit part in a new branch is a key
    ("s=", ("s",), ""),
    ("s='='", ("s",), "="),  # the first '=' ends the path (a plain `=` value is refused: YAML 1.1's value key)
    ("s=a=b", ("s",), "a=b"),
    (" s =1", ("s",), 1),  # the path is stripped
    ("s= 1", ("s",), 1),
    ("n.x=1", None, None),  # (refused; see the next table)
]


@pytest.mark.parametrize("flag, path, value", [row for row in SET_TABLE if row[1] is not None])
def test_what_a_flag_sets(flag, path, value):
    document, problems = applied(flag)
    assert problems == []
    assert get_at(document.values, path) == value


REFUSED_TABLE = [
    ("lst.3=1", "'lst' is a list of 3 item(s), indices 0..2; '3' is not one of them"),  # equal to the length
    ("lst.-1=1", "'lst' is a list of 3 item(s), indices 0..2; '-1' is not one of them"),  # no counting from the end
    ("lst.x=1", "'lst' is a list of 3 item(s), indices 0..2; 'x' is not one of them"),
    ("lst.0.a=1", "'lst.0' is a number (10), not a mapping or list, so 'lst.0.a' cannot be set"),
    ("s.x=1", "'s' is a string ('text'), not a mapping or list, so 's.x' cannot be set"),
    ("n.x=1", "'n' is null, not a mapping or list, so 'n.x' cannot be set"),
    ("m.b.2.c=1", "'m.b' is a list of 2 item(s), indices 0..1; '2' is not one of them"),
]


@pytest.mark.parametrize("flag, problem", REFUSED_TABLE)
def test_what_cannot_be_set_is_refused_at_the_flag_and_changes_nothing(flag, problem):
    document, problems = applied(flag)
    assert [(d.message, d.code, d.span) for d in problems] == [
        (f"cannot apply --set {flag.split('=')[0]}: {problem}", "override",
         Span(OVERRIDE_FILE, 1, 1, 1, len(flag) + 1, text=flag))]
    assert document.values == load_text(CONFIG, "f.yaml").values


@pytest.mark.parametrize("flag", ["lst", "", "=1", " =1", ".", "a.b"])
def test_a_flag_without_a_path_and_value_is_refused(flag):
    _, problems = applied(flag)
    assert [(d.message, d.code, d.span) for d in problems] == [
        (f"override '{flag}' is not of the form dotted.path=value", "override",
         Span(OVERRIDE_FILE, 1, 1, 1, len(flag) + 1, text=flag))]


@pytest.mark.parametrize("value, kind", [(True, "a boolean (True)"), (2.5, "a number (2.5)"), (7, "a number (7)"),
                                         ("x" * 50, "a string ('" + "x" * 40 + "')"), (b"b", "a bytes")])
def test_what_a_scalar_in_the_way_is_called(value, kind):
    document = Document(values={"k": value})
    (problem,) = apply_overrides(document, ["k.x=1"])
    assert problem.message == f"cannot apply --set k.x: 'k' is {kind}, not a mapping or list, so 'k.x' cannot be set"


def test_a_list_that_is_empty_has_no_index():
    (problem,) = apply_overrides(Document(values={"e": []}), ["e.0=1"])
    assert problem.message == "cannot apply --set e.0: 'e' is a list of 0 item(s), no index: it is empty; '0' is not " \
        "one of them"


def test_the_top_level_itself_cannot_be_in_the_way():
    (problem,) = apply_overrides(Document(values={"a": 1}), ["a.b.c=1"])
    assert problem.message == "cannot apply --set a.b.c: 'a' is a number (1), not a mapping or list, so 'a.b' cannot " \
        "be set"


def test_flags_apply_in_order_and_a_refused_one_leaves_the_others():
    document, problems = applied("lst=[1, 2]", "lst.9=0", "lst.1=9", "s=a", "s=b")
    assert len(problems) == 1
    assert document.values["lst"] == [1, 9] and document.values["s"] == "b"


def test_the_set_value_and_its_key_are_positioned_in_the_flag_and_what_it_replaced_is_forgotten():
    flag = "m={x: 1}"
    document, problems = applied(flag)
    assert not problems
    sm = document.source_map
    assert sm.values[("m",)] == Span(OVERRIDE_FILE, 1, 3, 1, 9, text=flag)
    assert sm.keys[("m",)] == Span(OVERRIDE_FILE, 1, 1, 1, 2, text=flag)
    assert not any(path[:1] == ("m",) and len(path) > 1 for path in sm.values)
    assert not any(path[:1] == ("m",) and len(path) > 1 for path in sm.keys)
    assert sm.value(("m", "x")) == sm.values[("m",)]  # the new value's items: the flag
    assert sm.values[("lst",)].file == "f.yaml"  # the rest of the file keeps its positions


@pytest.mark.parametrize("flag, path", [("m.9=x", ("m", 9)), ("m.7=x", ("m", "7")), ("m.01=x", ("m", "01")),
                                        ("m.8=x", ("m", "8")), ("lst.1=x", ("lst", 1))])
def test_the_position_is_recorded_at_the_key_as_the_document_spells_it(flag, path):
    document, _ = applied(flag)
    key = flag.split("=")[0]
    assert document.source_map.values[path] == Span(OVERRIDE_FILE, 1, len(key) + 2, 1, len(flag) + 1, text=flag)
    assert document.source_map.keys[path] == Span(OVERRIDE_FILE, 1, 1, 1, len(key) + 1, text=flag)


def test_a_value_error_names_the_flag_and_stands_at_the_value():
    flag = "m.a=!!int x"
    _, problems = applied(flag)
    assert [(d.message, d.span) for d in problems] == [
        ("--set m.a: 'x' is not a valid !!int (ValueError)", Span(OVERRIDE_FILE, 1, 5, 1, len(flag) + 1, text=flag))]


@pytest.mark.parametrize("flag, depth", [
    ("a.b=1", None),  # 2 levels
    ("a.b.c=1", None),  # 3: at the limit
    ("a.b=[1]", None),
    ("a.b.c.d=1", 4),  # one past it
    ("a.b=[[1]]", 4),
    ("a=[[[1]]]", 4),
    ("a={b: {c: [1]}}", 4),
])
def test_the_path_and_its_value_nest_at_most_the_depth_limit(monkeypatch, flag, depth):
    monkeypatch.setattr(overrides, "MAX_DEPTH", 3)
    document = Document(values={})
    problems = apply_overrides(document, [flag])
    if depth is None:
        assert problems == [] and document.values
    else:
        key = flag.split("=")[0]
        parts = len(key.split("."))
        assert [(d.message, d.code, d.span) for d in problems] == [
            (f"--set {key}: the path ({parts} parts) and its value nest {depth} levels deep; a config may nest at "
             "most 3", "limit", Span(OVERRIDE_FILE, 1, 1, 1, len(flag) + 1, text=flag))]
        assert document.values == {}


@pytest.mark.parametrize("flag, where, col", [
    ("\udcffa=1", "path", 1),
    ("a\udcff=1", "path", 2),
    ("a=\udcff", "value", 3),
    ("a=xy\udcff", "value", 5),
])
def test_a_flag_that_is_not_utf8_is_refused_at_its_byte(flag, where, col):
    document = Document(values={})
    (problem,) = apply_overrides(document, [flag])
    assert problem.code == "override" and problem.span == Span(OVERRIDE_FILE, 1, col, 1, col + 1, text=flag)
    assert f"the {where} is not UTF-8 text (the byte at column {col} cannot be decoded)" in problem.message
    assert document.values == {}


# --- the path rules, against a re-implementation -------------------------------------------------------------------


def reference_set(root: dict, key: str, value) -> tuple[bool, tuple]:
    """Set value at the dotted key as the rules say: a mapping's key as written if it has it, else its integer key
    (short ASCII digits) if it has that, else a new key as written (missing branches made); a list's item by a
    non-negative index below its length; nothing else. (done, the path as the document spells it)."""
    node, spelled = root, []
    texts = key.split(".")
    for i, text in enumerate(texts):
        last = i == len(texts) - 1
        number = int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None
        if isinstance(node, dict):
            name = text if text in node or number not in node else number
            spelled.append(name)
            if last:
                node[name] = value
            else:
                node = node.setdefault(name, {})
        elif isinstance(node, list):
            if number is None or number >= len(node):
                return False, ()
            spelled.append(number)
            if last:
                node[number] = value
            else:
                node = node[number]
        else:
            return False, ()
    return True, tuple(spelled)


KEYS = ["a", "b", "0", "1", "01", 0, 1]
documents = st.dictionaries(
    st.sampled_from(KEYS),
    st.recursive(st.integers(0, 9) | st.none() | st.just("t"),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
                 max_leaves=10),
    max_size=4,
)
paths = st.lists(st.sampled_from(["a", "b", "0", "1", "01", "2", "-1", "x", "\u0661"]), min_size=1, max_size=4)


@given(documents, paths, st.sampled_from(["9", "[7]", "{z: 1}", "w"]))
def test_a_flag_sets_what_the_path_rules_say(values, parts, text):
    key = ".".join(parts)
    expected = copy.deepcopy(values)
    done, spelled = reference_set(expected, key, load_text(f"v: {text}").values["v"])
    document = Document(values=values, source_map=SourceMap())
    problems = apply_overrides(document, [f"{key}={text}"])
    assert (problems == []) == done
    assert document.values == expected
    if done:
        assert document.source_map.values[spelled].text == f"{key}={text}"
