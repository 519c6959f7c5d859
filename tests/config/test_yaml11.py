"""Plain scalars are read as the reference reads them (OmegaConf.load: PyYAML's YAML 1.1 SafeLoader with OmegaConf's
float rule and no timestamps), and what we write reads back the same, by us and by OmegaConf.

The expected values of TABLE are written out by hand. They were checked once, on 2026-12-04, against
OmegaConf 2.4.0 on PyYAML 6.0.4 (the reference's environment: ``OmegaConf.load`` of ``k: <text>``), and all agreed.
The differential tests at the end compare with OmegaConf itself where it is importable (it is not a dependency of
this project): ``PYTHONPATH=.:<folder holding omegaconf> python -m pytest tests/config/test_yaml11.py``.
"""

import io
import math

import pytest

from modalities.config.compose import compose_files
from modalities.config.diagnostics import WARNING, ConfigError
from modalities.config.dump import dump_yaml
from modalities.config.load import Document, load_text, load_value
from modalities.config.overrides import apply_overrides
from modalities.config.yaml11 import plain_tag

ERROR = object()  # OmegaConf.load raises on it (and we report a positioned error)
NAN = object()

TABLE = [
    # integers: decimal, octal (leading 0), hex, binary, underscores anywhere after the first digit
    ("0", 0), ("-0", 0), ("+0", 0), ("7", 7), ("-7", -7), ("+7", 7), ("1_000", 1000), ("1__2", 12), ("12_", 12),
    ("010", 8), ("-010", -8), ("+010", 8), ("00", 0), ("0_", 0), ("07", 7), ("0_10", 8), ("010_", 8),
    ("08", "08"), ("09", "09"), ("0_8", "0_8"),
    ("0x1F", 31), ("0x1f", 31), ("-0x1F", -31), ("0x_1_F", 31), ("0X1F", "0X1F"), ("0x", "0x"), ("0xG", "0xG"),
    ("0b101", 5), ("+0b11", 3), ("-0b1_0", -2), ("0B11", "0B11"), ("0b", "0b"), ("0b2", "0b2"),
    ("0o17", "0o17"), ("0o", "0o"), ("0x_", ERROR), ("0b_", ERROR),
    # base 60 (sexagesimal): integers need a first digit 1-9 and parts 0-59
    ("1:30", 90), ("-1:30", -90), ("1:5", 65), ("1:05", 65), ("1_0:30", 630), ("1_:30", 90), ("190:20:30", 685230),
    ("1:60", "1:60"), ("0:30", "0:30"), ("1:_5", "1:_5"), ("1:30:00.5", 5400.5), ("0:30.5", 30.5),
    ("190:20:30.15", 685230.15), ("1:30:60.5", "1:30:60.5"), ("1:30.5.5", "1:30.5.5"),
    # floats: PyYAML's (a '.' needed, an exponent with its sign) and OmegaConf's (1e3, 1.e5)
    (".5", 0.5), ("5.", 5.0), ("1.", 1.0), ("0.", 0.0), ("09.5", 9.5), ("1_0.5", 10.5), ("1_.5", 1.5), ("1.5_", 1.5),
    ("1._", 1.0), ("1e3", 1000.0), ("1E-3", 0.001), ("1e-3", 0.001), ("1e+3", 1000.0), ("+1.0e+3", 1000.0),
    ("1.0e3", 1000.0), ("1.e5", 100000.0), ("0e0", 0.0), ("1_0e1", 100.0), (".5e+3", 500.0),
    (".5e3", ".5e3"), ("-.5", "-.5"), ("+.5", "+.5"), (".", "."), ("12e", "12e"), ("e3", "e3"), ("1e1_0", "1e1_0"),
    ("1.0e1_0", "1.0e1_0"), ("0.5e-3_", "0.5e-3_"), ("3.14.15", "3.14.15"),
    (".inf", math.inf), ("-.Inf", -math.inf), ("+.INF", math.inf), (".NaN", NAN), (".nan", NAN), (".NAN", NAN),
    ("-.nan", "-.nan"), ("inf", "inf"), ("nan", "nan"),
    # null
    ("~", None), ("null", None), ("Null", None), ("NULL", None), ("", None), ("nUll", "nUll"), ("none", "none"),
    # booleans: every YAML 1.1 spelling in its three cases; other cases and y/n are text
    ("true", True), ("True", True), ("TRUE", True), ("tRue", "tRue"),
    ("false", False), ("False", False), ("FALSE", False), ("fAlse", "fAlse"),
    ("yes", True), ("Yes", True), ("YES", True), ("yEs", "yEs"),
    ("no", False), ("No", False), ("NO", False), ("nO", "nO"),
    ("on", True), ("On", True), ("ON", True), ("oN", "oN"),
    ("off", False), ("Off", False), ("OFF", False), ("oFF", "oFF"),
    ("y", "y"), ("Y", "Y"), ("n", "n"), ("N", "N"),
    # timestamps stay text; so does what only looks like a number
    ("2001-12-14", "2001-12-14"), ("2001-12-14T21:59:43.10-05:00", "2001-12-14T21:59:43.10-05:00"),
    ("_12", "_12"), ("1,000", "1,000"), ("1 000", "1 000"), ("+", "+"), ("1.2.3", "1.2.3"), ("12abc", "12abc"),
    # `=` is YAML 1.1's value key: OmegaConf.load cannot read it as a value; `<<` is the merge key
    ("=", ERROR), ("<<", ERROR), ("==", "=="), ("a=b", "a=b"),
]


def _same(value, expected) -> bool:
    if expected is NAN:
        return isinstance(value, float) and math.isnan(value)
    return type(value) is type(expected) and value == expected


@pytest.mark.parametrize("text,expected", TABLE, ids=[repr(t) for t, _ in TABLE])
def test_a_plain_scalar_reads_as_omegaconf_load_reads_it(text, expected):
    if expected is ERROR:
        with pytest.raises(ConfigError) as e:
            load_text(f"k: {text}\n", "f.yaml")
        (d,) = e.value.diagnostics
        assert (d.code, d.span.line, d.span.col) == ("yaml-scalar", 1, 4)
        assert "quote it" in d.hint
        return
    value = load_text(f"k: {text}\n", "f.yaml").values["k"]
    assert _same(value, expected), (value, expected)
    # the same text in a list, and as a --set value (OmegaConf.from_dotlist reads a value by the same loader)
    assert _same(load_text(f"k:\n- {text}\n").values["k"][0], expected)
    document = Document(values={"k": 0})
    assert apply_overrides(document, [f"k={text}"]) == []
    assert _same(document.values["k"], expected if text else "")  # an empty --set value is "" (our rule)


@pytest.mark.parametrize("text", ["'010'", '"on"', "'1:30'", '"1e3"', "''", "'='", "|\n  on"])
def test_quoted_scalars_are_text(text):
    value = load_text(f"k: {text}\n").values["k"]
    assert isinstance(value, str) and plain_tag(value) != "str"


def test_explicit_tags_construct_as_pyyaml_does():
    values = load_text("a: !!int 010\nb: !!float 1e3\nc: !!bool Off\nd: !!str 010\ne: !!int 0x1F\nf: ! 010\n").values
    assert values == {"a": 8, "b": 1000.0, "c": False, "d": "010", "e": 31, "f": 8}  # libyaml: `! x` is plain


def test_the_issues_example_file():
    text = "a: 010\nb: 0x1F\nc: 1_000\nd: 1:30\ne: on\nf: yes\ng: No\nh: 1e3\nj: 0o17\nl: 0b101\np: Off\nq: y\n"
    text += "r: 2001-12-14\ns: 1_0.5\n"
    values = load_text(text).values
    assert values == {"a": 8, "b": 31, "c": 1000, "d": 90, "e": True, "f": True, "g": False, "h": 1000.0,
                      "j": "0o17", "l": 5, "p": False, "q": "y", "r": "2001-12-14", "s": 10.5}
    assert type(values["h"]) is float and type(values["e"]) is bool


def test_keys_read_by_yaml_1_1():
    assert load_text("010: a\n'010': b\n=: c\n").values == {8: "a", "010": "b", "=": "c"}
    with pytest.raises(ConfigError) as e:
        load_text("x: 1\non: 2\n", "f.yaml")
    (d,) = e.value.diagnostics
    assert (d.code, d.span.line, d.span.col) == ("yaml-scalar", 2, 1)
    assert "read as a bool" in d.message and "'on'" in d.hint


def test_octal_and_base_60_values_warn_with_position_and_fix():
    document = load_text("seed: 010\nb: 07\nc: 8\nd: 1:30\ne: '010'\nf: 0x10\ng: 1:30:00.5\n", "f.yaml")
    assert document.values["seed"] == 8 and document.values["d"] == 90
    warned = {(w.path, w.span.line, w.span.col) for w in document.warnings}
    assert warned == {(("seed",), 1, 7), (("d",), 4, 4), (("g",), 7, 4)}  # 07 means 7 either way: no warning
    seed = next(w for w in document.warnings if w.path == ("seed",))
    assert seed.severity == WARNING and seed.code == "yaml-1.1" and "octal number 8" in seed.message
    assert "write 8" in seed.hint and "'010'" in seed.hint


def test_warnings_of_composed_files_reach_the_document(tmp_path):
    (tmp_path / "base.yaml").write_text("a: 010\nb: 1\n")
    (tmp_path / "exp.yaml").write_text("extends: base.yaml\nb: 1:30\n")
    document = compose_files(tmp_path / "exp.yaml")
    assert document.values == {"a": 8, "b": 90}
    assert sorted((w.span.file.rsplit("/", 1)[-1], w.span.line) for w in document.warnings) == [
        ("base.yaml", 1), ("exp.yaml", 2)]


def test_set_values_and_replace_tags_follow_yaml_1_1():
    document = Document(values={"settings": {"seed": 1, "shuffle": "x"}})
    assert apply_overrides(document, ["settings.seed=010", "settings.shuffle=off", "settings.t=1:30"]) == []
    assert document.values["settings"] == {"seed": 8, "shuffle": False, "t": 90}
    marked = load_text("a: !replace on\nb: !replace 'on'\n", merge_tags=True).values
    assert marked == {"a": True, "b": "on"}


def test_resolver_arguments_keep_the_grammar_like_reading():
    # OmegaConf reads a resolver's argument by its grammar, where `on` and `1:30` are text (checked against it)
    assert load_value("on", "<x>", yaml_version="1.2") == "on"
    assert load_value("1:30", "<x>", yaml_version="1.2") == "1:30"
    assert load_value("on", "<x>") is True


def test_base_60_integers_stay_within_the_digit_limit():
    huge = ":".join(["59"] * 2100)  # 4,200 digits of text, about 3,700 decimal digits of value: allowed
    assert load_text(f"k: 1:{huge}\n").values["k"] > 0
    with pytest.raises(ConfigError) as e:  # 3,001 digits of text, about 5,300 of value: over the limit
        load_text("k: 1" + ":5" * 3000 + "\n")
    assert e.value.diagnostics[0].message == "an integer of more than 4,300 digits is too long"
    with pytest.raises(ConfigError):  # base 60 floats leave the floats: an error, as PyYAML's OverflowError
        load_text("k: 1" + ":00" * 200 + ".5\n")


STRINGS = [text for text, expected in TABLE if expected is not ERROR] + [
    "", "=", "<<", "y", "n", "a: b", "- x", "#c", "x #c", " lead", "trail ", "multi\nline", "on\n", "\t",
]


def test_written_strings_read_back_as_the_same_strings():
    config = {"s": {f"k{i}": text for i, text in enumerate(STRINGS)}, "keys": {text: 1 for text in STRINGS if text}}
    text = dump_yaml(config)
    assert load_text(text).values == config
    for line in text.splitlines()[1:5]:
        assert "'" in line  # '0', '-0', '+0', '7' are numbers in YAML: written quoted


def test_written_values_read_back_as_the_same_values():
    values = {"i": [0, -8, 8, 90, 10**30], "f": [0.5, 1e-5, 1.5e-05, 1e20, 1e16, -0.0, 3.0, math.inf, -math.inf],
              "b": [True, False], "n": None, "e": [], "m": {}}
    assert load_text(dump_yaml(values)).values == values


def test_provenance_writer_quotes_too():
    from ruamel.yaml import YAML

    from modalities.config.dump import terminal_safe

    yaml = YAML(typ="rt")
    terminal_safe(yaml)
    stream = io.StringIO()
    config = {f"k{i}": text for i, text in enumerate(STRINGS)}
    yaml.dump(config, stream)
    assert load_text(stream.getvalue()).values == config


# --- against OmegaConf itself, where it is importable -----------------------------------------------------------


def _omegaconf_load(text: str):
    omegaconf = pytest.importorskip("omegaconf")
    return omegaconf.OmegaConf.to_container(omegaconf.OmegaConf.load(io.StringIO(text)))


@pytest.mark.parametrize("text,expected", TABLE, ids=[repr(t) for t, _ in TABLE])
def test_the_table_is_omegaconfs(text, expected):
    if expected is ERROR:
        with pytest.raises(Exception):
            _omegaconf_load(f"k: {text}\n")
        return
    assert _same(_omegaconf_load(f"k: {text}\n")["k"], expected)


def test_omegaconf_reads_what_we_write_as_we_do():
    config = {"s": {f"k{i}": text for i, text in enumerate(STRINGS)}, "i": [8, 90], "f": [1e-5, 1e20, 0.5]}
    assert _omegaconf_load(dump_yaml(config)) == config


def test_random_plain_scalars_read_as_omegaconf_reads_them():
    pytest.importorskip("omegaconf")
    from hypothesis import given, settings
    from hypothesis import strategies as st

    pieces = st.sampled_from(list("0123456789_:.eE+-xbo~") + ["inf", "nan", "on", "yes", "No", "0x", "0b", "1:"])

    @settings(max_examples=500, deadline=None)
    @given(st.lists(pieces, min_size=1, max_size=6).map("".join))
    def check(text):
        try:
            theirs = _omegaconf_load(f"k: {text}\n")["k"]
        except Exception:
            with pytest.raises(ConfigError):
                load_text(f"k: {text}\n")
            return
        ours = load_text(f"k: {text}\n").values["k"]
        assert _same(ours, NAN if isinstance(theirs, float) and math.isnan(theirs) else theirs), (text, ours, theirs)
        assert _omegaconf_load(dump_yaml({"k": ours}))["k"] == ours or ours != ours

    check()
