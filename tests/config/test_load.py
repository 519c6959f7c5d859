import pytest

from modalities.config.diagnostics import ConfigError
from modalities.config.load import load_text


def test_values_are_plain_and_every_key_and_value_has_a_position():
    doc = load_text("a:\n  b: [1, 2.5, x]\n  c: null\nd: true\n", "f.yaml")
    assert doc.values == {"a": {"b": [1, 2.5, "x"], "c": None}, "d": True}
    assert type(doc.values["a"]) is dict
    sm = doc.source_map
    assert (sm.keys[("a", "b")].line, sm.keys[("a", "b")].col) == (2, 3)
    assert (sm.values[("a", "b", 2)].line, sm.values[("a", "b", 2)].col) == (2, 15)
    assert (sm.values[("d",)].line, sm.values[("d",)].col, sm.values[("d",)].end_col) == (4, 4, 8)


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/object/apply:os.system ['touch /tmp/pwned']\n",
        "a: !!python/name:os.system\n",
        "a: !custom 3\n",
    ],
)
def test_object_constructing_tags_are_rejected_with_position(text):
    with pytest.raises(ConfigError) as e:
        load_text(text, "evil.yaml")
    (d,) = e.value.diagnostics
    assert d.code == "yaml-tag" and d.span.file == "evil.yaml" and d.span.line == 1 and d.span.col == 4
    assert "not allowed" in d.message


def test_duplicate_keys_are_errors_naming_both_lines():
    with pytest.raises(ConfigError) as e:
        load_text("a: 1\nb: 2\na: 3\n", "f.yaml")
    (d,) = e.value.diagnostics
    assert d.code == "duplicate-key" and d.span.line == 3 and "line 1" in d.message


def test_syntax_error_has_position():
    with pytest.raises(ConfigError) as e:
        load_text("a: [1, 2\nb: 3\n", "f.yaml")
    (d,) = e.value.diagnostics
    assert d.code == "yaml-syntax" and d.span is not None and d.span.file == "f.yaml"


def test_merge_keys_fill_in_without_overriding():
    doc = load_text("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 5\n", "f.yaml")
    assert doc.values["c"] == {"y": 5, "x": 1}


def test_top_level_must_be_a_mapping():
    with pytest.raises(ConfigError, match="mapping"):
        load_text("- 1\n- 2\n")


def test_missing_file_is_a_clear_error(tmp_path):
    from modalities.config.load import load_document

    with pytest.raises(ConfigError, match="not found"):
        load_document(tmp_path / "nope.yaml")



def test_repeated_scalars_read_as_each_alone():
    """Scalar tags are resolved once per distinct text in a document: the same text, plain or quoted, many times
    over and at different depths, still reads as that text read alone (whose reading tests/config/test_yaml11.py
    checks against the reference's)."""
    scalars = ["1", "'1'", '"1"', "1.5", ".inf", "0x10", "0o17", "010", "true", "on", "'true'", "null", "~", "''",
               "x", "1e3", "!!str 1", "!!float 1", "-0"]
    text = "".join(f"k{i}: [{s}, {s}, {{key: {s}, x: [{s}]}}]\nt{i}: {s}\n" for i, s in enumerate(scalars * 3))
    expected = {}
    for i, s in enumerate(scalars * 3):
        alone = load_text(f"v: {s}\n").values["v"]
        expected[f"k{i}"], expected[f"t{i}"] = [alone, alone, {"key": alone, "x": [alone]}], alone
    values = load_text(text, "f.yaml").values
    assert values == expected
    pairs = [(values[k], expected[k]) for k in expected] + [(values[k][2]["key"], expected[k][2]["key"])
                                                            for k in expected if k.startswith("k")]
    assert all(type(ours) is type(theirs) for ours, theirs in pairs)
