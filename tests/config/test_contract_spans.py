"""Contracts of modalities/config/spans.py: positions of keys and values kept beside the values, and the path
helpers every stage uses. Tables worked out by hand; the copy and drop of a subtree compared, on drawn trees,
with a dictionary comprehension written in the test."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modalities.config.spans import SourceMap, Span, dotted, get_at, list_index, path_part, subtree_paths


def span(line: int) -> Span:
    return Span("f.yaml", line, 1, line, 2)


ROOT, A, AB, AL0 = span(1), span(2), span(3), span(4)


def test_a_span_prints_as_file_line_column():
    assert str(Span("dir/f.yaml", 12, 7, 12, 9)) == "dir/f.yaml:12:7"
    assert str(Span("<--set>", 1, 1, 1, 4, text="a=1")) == "<--set>:1:1"


# path -> the span value() gives: its own, else its nearest ancestor's, else the root's
VALUE_TABLE = [
    ((), ROOT),
    (("a",), A),
    (("a", "b"), AB),
    (("a", "b", "c"), AB),  # one below: the parent's
    (("a", "b", "c", "d"), AB),  # two below
    (("a", "x"), A),  # a sibling without its own span: the common parent's
    (("a", "l", 0), AL0),
    (("a", "l", 1), A),  # list items are parts like keys
    (("z",), ROOT),  # nothing on the way: the root's
]


@pytest.mark.parametrize("path, expected", VALUE_TABLE)
def test_value_is_the_span_of_the_path_or_of_its_nearest_ancestor(path, expected):
    source_map = SourceMap(values={(): ROOT, ("a",): A, ("a", "b"): AB, ("a", "l", 0): AL0})
    assert source_map.value(path) == expected
    assert source_map.value(list(path)) == expected  # a list names the same path


def test_value_without_any_ancestor_is_none():
    source_map = SourceMap(values={("a",): A})
    assert source_map.value(("b",)) is None
    assert source_map.value(()) is None
    assert SourceMap().value(("a", "b")) is None


def test_key_is_the_key_span_else_the_value_span():
    key_span = span(9)
    source_map = SourceMap(values={(): ROOT, ("a",): A}, keys={("a",): key_span})
    assert source_map.key(("a",)) == key_span
    assert source_map.key(("a", "b")) == A  # no key span of its own: the value's (its parent's)
    assert source_map.key(["a"]) == key_span
    assert SourceMap().key(("a",)) is None


def _tables() -> SourceMap:
    return SourceMap(
        values={(): ROOT, ("s",): span(2), ("s", "x"): span(3), ("s", "l"): span(4), ("s", "l", 0): span(5),
                ("sx",): span(6), ("t",): span(7), ("t", "old"): span(8)},
        keys={("s",): span(12), ("s", "x"): span(13), ("sx",): span(16)},
    )


@pytest.mark.parametrize("with_value", [False, True])
def test_copy_subtree_gives_the_paths_strictly_below_the_source_to_the_target(with_value):
    source_map = _tables()
    value = {"x": 1, "l": [2]}
    if with_value:
        source_map.copy_subtree(("s",), ("t",), value)
    else:
        source_map.copy_subtree(("s",), ("t",))
    # below: copied; the source itself is not (the target keeps its own span); a sibling named with the same
    # prefix ("sx") is not below "s"; what the target had below stays unless overwritten
    assert source_map.values[("t",)] == span(7)
    assert source_map.values[("t", "x")] == span(3)
    assert source_map.values[("t", "l")] == span(4)
    assert source_map.values[("t", "l", 0)] == span(5)
    assert source_map.values[("t", "old")] == span(8)
    assert ("t", "x") in source_map.keys and source_map.keys[("t", "x")] == span(13)
    assert ("t",) not in source_map.keys
    assert not any(p[:1] == ("t",) and "sx" in p for p in source_map.values)
    assert source_map.values[("s", "x")] == span(3)  # the source keeps its spans


def test_copy_subtree_with_a_value_looks_up_only_its_paths():
    source_map = _tables()
    source_map.copy_subtree(("s",), ("t",), {"x": 1})  # "l" is not in the value: not copied
    assert ("t", "x") in source_map.values and ("t", "l") not in source_map.values


@pytest.mark.parametrize("with_value", [False, True])
def test_drop_subtree_forgets_the_paths_strictly_below(with_value):
    source_map = _tables()
    if with_value:
        source_map.drop_subtree(["s"], {"x": 1, "l": [2]})
    else:
        source_map.drop_subtree(["s"])
    assert set(source_map.values) == {(), ("s",), ("sx",), ("t",), ("t", "old")}
    assert set(source_map.keys) == {("s",), ("sx",)}


def test_drop_subtree_with_a_value_drops_only_its_paths():
    source_map = _tables()
    source_map.drop_subtree(("s",), {"l": []})
    assert ("s", "l") not in source_map.values and ("s", "l", 0) in source_map.values
    assert ("s", "x") in source_map.values


def test_drop_of_the_root_forgets_everything_but_the_root():
    source_map = _tables()
    source_map.drop_subtree(())
    assert set(source_map.values) == {()} and not source_map.keys


# value -> the paths below prefix ("p",)
SUBTREE_TABLE = [
    (1, set()),
    ("text", set()),
    ({}, set()),
    ([], set()),
    ({"a": 1}, {("p", "a")}),
    ([7], {("p", 0)}),
    ([7, 8], {("p", 0), ("p", 1)}),
    ({"a": {"b": [1, {"c": None}]}}, {("p", "a"), ("p", "a", "b"), ("p", "a", "b", 0), ("p", "a", "b", 1),
                                       ("p", "a", "b", 1, "c")}),
]


@pytest.mark.parametrize("value, paths", SUBTREE_TABLE)
def test_subtree_paths_are_every_path_below_the_prefix(value, paths):
    found = list(subtree_paths(value, ["p"]))
    assert set(found) == paths and len(found) == len(paths)


PATH_PART_TABLE = [
    ("0", 0),
    ("7", 7),
    ("10", 10),
    ("007", 7),
    ("9" * 18, int("9" * 18)),  # the longest index read as a number
    ("9" * 19, "9" * 19),  # one digit more: a key
    ("-1", "-1"),  # not plain digits
    ("", ""),
    ("a1", "a1"),
    ("1a", "1a"),
    ("\u0663", "\u0663"),  # ARABIC-INDIC DIGIT THREE: a digit, not ASCII
    ("\u00b2", "\u00b2"),  # SUPERSCRIPT TWO
    (" 1", " 1"),
]


@pytest.mark.parametrize("text, part", PATH_PART_TABLE)
def test_path_part_is_an_index_only_for_short_ascii_digits(text, part):
    assert path_part(text) == part
    assert type(path_part(text)) is type(part)


LIST_INDEX_TABLE = [
    ("0", 3, 0),
    (0, 3, 0),
    ("2", 3, 2),  # the last
    ("3", 3, None),  # equal to the length
    ("4", 3, None),
    ("-1", 3, 2),  # the last, from the end
    ("-3", 3, 0),  # the first, from the end
    ("-4", 3, None),  # one past the first
    (-1, 3, 2),
    ("0", 1, 0),
    ("-1", 1, 0),
    ("0", 0, None),  # an empty list has no index
    ("-0", 3, 0),
    ("-", 3, None),
    ("", 3, None),
    ("+1", 3, None),
    (" 1", 3, None),
    ("1.0", 3, None),
    ("x", 3, None),
    ("9" * 18, 10**18, int("9" * 18)),
    ("9" * 19, 10**19, None),  # too long to be an index
    ("\u0661", 3, None),  # ARABIC-INDIC DIGIT ONE
]


@pytest.mark.parametrize("part, length, index", LIST_INDEX_TABLE)
def test_list_index_names_an_item_or_none(part, length, index):
    assert list_index(part, length) == index


@given(st.integers(-30, 30), st.integers(0, 12))
def test_list_index_agrees_with_pythons_indexing(index, length):
    items = list(range(length))
    try:
        expected = items.index(items[index])
    except IndexError:
        expected = None
    assert list_index(str(index), length) == expected


DOTTED_TABLE = [((), ""), (("a",), "a"), (("a", 0, "b"), "a.0.b"), ((0,), "0"), (("a.b", "c"), "a.b.c")]


@pytest.mark.parametrize("path, text", DOTTED_TABLE)
def test_dotted(path, text):
    assert dotted(path) == text


def test_get_at_follows_keys_and_indices():
    values = {"a": {"b": [10, {"c": 3}]}}
    assert get_at(values, ()) is values
    assert get_at(values, ("a", "b", 1, "c")) == 3
    assert get_at(values, ("a", "b", -1)) == {"c": 3}
    with pytest.raises(KeyError):
        get_at(values, ("a", "x"))
    with pytest.raises(IndexError):
        get_at(values, ("a", "b", 2))


@st.composite
def trees(draw):
    """A source map over the paths of a drawn tree (keys from a small alphabet, so prefixes collide)."""
    keys = st.sampled_from(["a", "b", "ab", 0, 1])
    value = draw(st.recursive(st.integers(0, 3), lambda c: st.dictionaries(keys.filter(lambda k: isinstance(k, str)),
                                                                            c, max_size=3) | st.lists(c, max_size=3),
                              max_leaves=12))
    return {"a": value, "ab": draw(st.integers())}


@given(trees(), st.sampled_from([("a",), ("ab",), ()]), st.sampled_from([("t",), ("a", "t")]))
def test_copy_and_drop_of_a_subtree_agree_with_a_comprehension(document, source, target):
    paths = [()] + list(subtree_paths(document, ()))
    values = {p: Span("f", i + 1, 1, i + 1, 2) for i, p in enumerate(paths)}
    keys = {p: Span("f", i + 1, 9, i + 1, 10) for i, p in enumerate(paths) if p}
    n = len(source)
    for with_value in (False, True):
        source_map = SourceMap(values=dict(values), keys=dict(keys))
        subtree = get_at(document, source)
        if with_value:
            source_map.copy_subtree(source, target, subtree)
        else:
            source_map.copy_subtree(source, target)
        for table, original in ((source_map.values, values), (source_map.keys, keys)):
            expected = dict(original)
            expected.update({target + p[n:]: s for p, s in original.items() if p[:n] == source and len(p) > n})
            assert table == expected
        source_map = SourceMap(values=dict(values), keys=dict(keys))
        if with_value:
            source_map.drop_subtree(source, subtree)
        else:
            source_map.drop_subtree(source)
        for table, original in ((source_map.values, values), (source_map.keys, keys)):
            assert table == {p: s for p, s in original.items() if not (p[:n] == source and len(p) > n)}
