"""A dotted path reaching an integer YAML key (``m: {7: x}``), as OmegaConf 2.4 (the reference's resolver) reads
one: the key as written first, else the integer key that ``int(part)`` gives, else nothing; a mapping holding both
7 and '7' is refused. The expectations were worked out from OmegaConf's rules (omegaconf.py _select_one, the
update path of OmegaConf.update, dictconfig.py _validate_non_ambiguous_key) and checked by hand against it."""

from __future__ import annotations

import pytest

from modalities.config.diagnostics import ConfigError
from modalities.config.load import load_text
from modalities.config.overrides import apply_overrides
from modalities.config.resolve import ResolverContext, resolve_document

NOT_FOUND = "does not exist"


def resolved(text: str) -> tuple[dict, list[str]]:
    document, diagnostics = resolve_document(load_text(text, "f.yaml"), ResolverContext(None, None, None))
    return document.values, [d.message for d in diagnostics]


@pytest.mark.parametrize(
    ("mapping", "path", "expected"),
    [
        ("{7: x}", "m.7", "x"),  # the integer key
        ("{'7': x}", "m.7", "x"),  # the string key
        ("{7: x}", "m.07", "x"),  # int('07') is 7
        ("{7: x}", "m.+7", "x"),  # int('+7') is 7
        ("{07: x}", "m.7", "x"),  # YAML reads the key 07 as the integer 7
        ("{'07': x}", "m.07", "x"),  # the string key as written
        ("{'07': x}", "m.7", NOT_FOUND),  # '7' is not '07', and there is no integer key
        ("{'7': x}", "m.07", NOT_FOUND),  # 7 is no integer key here
        ("{-1: x}", "m.-1", "x"),  # a negative integer key
        ("{'-1': x}", "m.-1", "x"),
        ("{-1: x}", "m.1", NOT_FOUND),
        ("{7: x}", "m.8", NOT_FOUND),
        ("{a: {7: {b: deep}}}", "m.a.7.b", "deep"),  # through an integer key
        ("{7: x}", "m.seven", NOT_FOUND),
    ],
)
def test_an_interpolation_reaches_an_integer_key_as_omegaconf_does(mapping, path, expected):
    values, errors = resolved(f"m: {mapping}\nr: ${{{path}}}\n")
    if expected == NOT_FOUND:
        assert len(errors) == 1 and NOT_FOUND in errors[0]
    else:
        assert errors == [] and values["r"] == expected


@pytest.mark.parametrize(
    ("mapping", "path", "expected"),
    [("{7: x}", "m.7", "x"), ("{7: x}", "m.07", "x"), ("{'07': x}", "m.7", "absent"), ("{-1: x}", "m.-1", "x")],
)
def test_oc_select_finds_an_integer_key_likewise(mapping, path, expected):
    values, errors = resolved(f"m: {mapping}\nr: ${{oc.select:{path},absent}}\n")
    assert errors == [] and values["r"] == expected


@pytest.mark.parametrize(
    ("mapping", "flag", "expected"),
    [
        ({7: "x"}, "m.7=y", {7: "y"}),  # the integer key is set, no string '7' beside it
        ({7: "x"}, "m.07=y", {7: "y"}),
        ({7: "x"}, "m.+7=y", {7: "y"}),
        ({"7": "x"}, "m.7=y", {"7": "y"}),
        ({"07": "x"}, "m.07=y", {"07": "y"}),
        ({"07": "x"}, "m.7=y", {"07": "x", "7": "y"}),  # a new key, a string as OmegaConf.update makes it
        ({-1: "x"}, "m.-1=y", {-1: "y"}),
        ({7: "x"}, "m.-7=y", {7: "x", "-7": "y"}),
        ({7: "x"}, "m.8=y", {7: "x", "8": "y"}),
        ({7: {"a": 1}}, "m.7.a=2", {7: {"a": 2}}),
    ],
)
def test_a_set_flag_names_an_integer_key_as_omegaconf_update_does(mapping, flag, expected):
    document = load_text("m: {}\n", "f.yaml")
    document.values["m"] = mapping
    assert apply_overrides(document, [flag]) == []
    assert document.values["m"] == expected


@pytest.mark.parametrize(
    ("mapping", "column", "message"),
    [
        ("{7: a, '7': b}", 11, "the key '7' and the key 7 (line 1) would be one key"),
        ("{'7': a, 7: b}", 13, "the key 7 and the key '7' (line 1) would be one key"),
        ("{-1: a, '-1': b}", 12, "the key '-1' and the key -1 (line 1) would be one key"),
    ],
)
def test_a_mapping_with_both_the_integer_and_the_string_key_is_refused(mapping, column, message):
    with pytest.raises(ConfigError) as raised:
        load_text(f"m: {mapping}\n", "f.yaml")
    (diagnostic,) = raised.value.diagnostics
    assert diagnostic.message.startswith(message) and (diagnostic.span.line, diagnostic.span.col) == (1, column)


@pytest.mark.parametrize(
    ("mapping", "at_07", "at_7"),
    [
        ("{7: a, '07': b}", "b", "a"),  # '07' names the key '07'; '7' (no such string key) the integer 7
        ("{7: a, '+7': b}", "a", "a"),  # no key '07': int('07') is 7
        ("{'07': a, 7: b}", "a", "b"),
    ],
)
def test_keys_a_path_can_tell_apart_stand_together(mapping, at_07, at_7):
    values, errors = resolved(f"m: {mapping}\nr: ${{m.07}}\ns: ${{m.7}}\n")
    assert errors == [] and (values["r"], values["s"]) == (at_07, at_7)
