"""Contracts of modalities/config/diagnostics.py: what a diagnostic carries, how it is shown (text with the
source line and a caret, JSON), what is escaped, cut and folded. Expected texts are written out by hand,
columns counted in the test's own strings."""

from __future__ import annotations

import json
import string

import pytest

from modalities.config import diagnostics as diag
from modalities.config.diagnostics import (
    ERROR,
    NOTE,
    WARNING,
    ConfigError,
    Diagnostic,
    cut,
    did_you_mean,
    fold,
    has_errors,
    printable,
    render_json,
    render_one,
    render_text,
)
from modalities.config.limits import MAX_REPORTED, MAX_REPORTED_PER_MESSAGE
from modalities.config.spans import Span

LINE = "  lr: 0.5  # the rate"


def at(col: int, end_col: int, line: int = 3, text: str | None = LINE, file: str = "f.yaml") -> Span:
    return Span(file, line, col, line, end_col, text=text)


# --- what a diagnostic carries -----------------------------------------------------------------------------------


def test_to_dict_of_a_positioned_diagnostic():
    d = Diagnostic("bad", span=Span("f.yaml", 3, 7, 4, 2), path=("a", 0, "b"), severity=WARNING, hint="fix", code="c")
    assert d.to_dict() == {"severity": "warning", "code": "c", "path": "a.0.b", "message": "bad", "hint": "fix",
                           "file": "f.yaml", "line": 3, "column": 7, "end_line": 4, "end_column": 2}


def test_to_dict_without_span_or_hint():
    assert Diagnostic("bad").to_dict() == {"severity": "error", "code": "", "path": "", "message": "bad", "hint": None,
                                           "file": None, "line": None, "column": None, "end_line": None,
                                           "end_column": None}


@pytest.mark.parametrize("field, limit", [("message", diag.MESSAGE_CHARS), ("hint", diag.MESSAGE_CHARS),
                                          ("path", diag.PATH_CHARS), ("file", diag.FILE_CHARS)])
@pytest.mark.parametrize("extra", [0, 1])
def test_to_dict_cuts_each_text_past_its_limit(field, limit, extra):
    text = "x" * (limit + extra)
    d = Diagnostic(text if field == "message" else "m", hint=text if field == "hint" else None,
                   path=(text,) if field == "path" else (), span=Span(text, 1, 1, 1, 2) if field == "file" else None)
    shown = d.to_dict()[field]
    assert (shown == text) == (extra == 0)
    assert shown == cut(text, limit)


def test_config_error_keeps_every_diagnostic_and_lists_the_errors():
    diagnostics = [Diagnostic("w", severity=WARNING), Diagnostic("e1"), Diagnostic("n", severity=NOTE),
                   Diagnostic("e2", severity=ERROR)]
    error = ConfigError(diagnostics)
    assert error.diagnostics == diagnostics and error.diagnostics is not diagnostics
    assert [d.message for d in error.errors] == ["e1", "e2"]
    assert str(error) == render_text(diagnostics, color=False)
    assert ConfigError([]).errors == [] and str(ConfigError([])) == ""


@pytest.mark.parametrize("severities, expected", [
    ([], False), ([WARNING], False), ([NOTE, WARNING], False), ([ERROR], True), ([WARNING, ERROR], True),
    ([ERROR, ERROR], True),
])
def test_has_errors(severities, expected):
    assert has_errors(Diagnostic("m", severity=s) for s in severities) is expected


# --- did you mean --------------------------------------------------------------------------------------------------

DID_YOU_MEAN_TABLE = [
    ("lenght", ["length", "width"], "did you mean 'length'?"),
    ("widht", ["length", "width"], "did you mean 'width'?"),
    ("zzz", ["length", "width"], None),  # nothing close
    ("lr", [], None),  # nothing to choose from
    # the three closest, closest first
    ("abcd", ["abcdefgh", "abcde", "abcdefg", "abcdef"], "did you mean 'abcde' or 'abcdef' or 'abcdefg'?"),
    ("abcd", ["abcd"], "did you mean 'abcd'?"),
    (7, ["7", "8"], "did you mean '7'?"),  # a key that is a number is compared as text
    ("a\x1bb", ["a\x1bc"], "did you mean 'a\\x1bc'?"),  # escaped as it would reach a terminal
]


@pytest.mark.parametrize("word, candidates, hint", DID_YOU_MEAN_TABLE)
def test_did_you_mean(word, candidates, hint):
    assert did_you_mean(word, candidates) == hint


@pytest.mark.parametrize("extra", [0, 1])
def test_did_you_mean_compares_names_up_to_the_length_limit(extra):
    long_word = "n" * (diag.SUGGEST_CHARS - 1 + extra) + "x"
    close = "n" * (diag.SUGGEST_CHARS - 1 + extra) + "y"
    # a word past the limit gets no hint; a candidate past it is not offered
    assert (did_you_mean(long_word, [close]) is None) == bool(extra)
    assert (did_you_mean(close[:-1] + "z", [close, "other"]) is None) == bool(extra)


@pytest.mark.parametrize("limit, found", [(1, False), (2, True)])
def test_did_you_mean_compares_at_most_so_many_candidates(monkeypatch, limit, found):
    monkeypatch.setattr(diag, "SUGGEST_CANDIDATES", limit)
    assert (did_you_mean("width", ["aaaa", "widht", "zzzz"]) is not None) == found


# --- what reaches a terminal -----------------------------------------------------------------------------------------

PRINTABLE_TABLE = [
    ("plain text", "plain text"),
    ("", ""),
    ("\x00", "\\x00"),
    ("\x08", "\\x08"),
    ("\t", "\t"),  # tab and newline are kept
    ("\n", "\n"),
    ("\x0b", "\\x0b"),
    ("\x1b[31m", "\\x1b[31m"),
    ("\x1f", "\\x1f"),
    (" ~", " ~"),
    ("\x7f", "\\x7f"),  # DEL
    ("\x80", "\\x80"),  # C1 controls
    ("\x9f", "\\x9f"),
    ("\xa0é", "\xa0é"),  # printable beyond ASCII
    ("\u2027", "\u2027"),
    ("\u2028", "\\u2028"),  # line and paragraph separators
    ("\u2029", "\\u2029"),
    ("\u202a", "\\u202a"),  # bidirectional embeddings and overrides
    ("\u202e", "\\u202e"),
    ("\u202f", "\u202f"),
    ("\u2065", "\u2065"),
    ("\u2066", "\\u2066"),  # isolates
    ("\u2069", "\\u2069"),
    ("\u206a", "\u206a"),
    ("\ud800", "\\ud800"),  # a lone surrogate
    ("\udc7f", "\\udc7f"),
    ("\udc80", "\\x80"),  # a byte that was not UTF-8 shows as that byte
    ("\udcff", "\\xff"),
    ("\udd00", "\\udd00"),
    ("\udfff", "\\udfff"),
    ("\ue000", "\ue000"),
    ("a\x00b\udcffc", "a\\x00b\\xffc"),
]


@pytest.mark.parametrize("text, shown", PRINTABLE_TABLE)
def test_printable_escapes_what_a_terminal_must_not_get(text, shown):
    assert printable(text) == shown


CUT_TABLE = [
    ("", 10, ""),
    (string.ascii_letters[:10], 10, string.ascii_letters[:10]),  # at the limit: as it is
    (string.ascii_letters[:11], 10, "abcdef...(2 characters cut)...ijk"),  # one past: 6 kept before, 3 after
    (string.ascii_letters[:12], 9, "abcdef...(3 characters cut)...jkl"),
    ("x" * 2000, 1000, "x" * 666 + "...(1,001 characters cut)..." + "x" * 333),
]


@pytest.mark.parametrize("text, limit, expected", CUT_TABLE)
def test_cut_keeps_the_start_and_the_end(text, limit, expected):
    assert cut(text, limit) == expected


# --- text: position, severity, path, message, the source line with a caret, the hint ---------------------------------

RENDER_TABLE = [
    (Diagnostic("boom"), "error: boom"),
    (Diagnostic("boom", severity=WARNING), "warning: boom"),
    (Diagnostic("boom", severity=NOTE), "note: boom"),
    (Diagnostic("boom", path=("a", 1)), "error: a.1: boom"),
    (Diagnostic("boom", hint="do this"), "error: boom\n      hint: do this"),
    # the caret under the value: columns 7..9 of LINE ("0.5")
    (Diagnostic("bad lr", span=at(7, 10), path=("lr",)),
     "f.yaml:3:7: error: lr: bad lr\n    3 |   lr: 0.5  # the rate\n      |       ^~~"),
    # a span of width 0 or less still marks one character
    (Diagnostic("m", span=at(3, 3)), "f.yaml:3:3: error: m\n    3 |   lr: 0.5  # the rate\n      |   ^"),
    (Diagnostic("m", span=at(3, 1)), "f.yaml:3:3: error: m\n    3 |   lr: 0.5  # the rate\n      |   ^"),
    # the first and the last column
    (Diagnostic("m", span=at(1, 2)), "f.yaml:3:1: error: m\n    3 |   lr: 0.5  # the rate\n      | ^"),
    (Diagnostic("m", span=at(21, 22)),
     "f.yaml:3:21: error: m\n    3 |   lr: 0.5  # the rate\n      |                     ^"),
    # one past the end of the line (a missing value): a caret after the last character
    (Diagnostic("m", span=at(22, 23)),
     "f.yaml:3:22: error: m\n    3 |   lr: 0.5  # the rate\n      |                      ^"),
    # a column before the first: at the first
    (Diagnostic("m", span=at(0, 3)), "f.yaml:3:0: error: m\n    3 |   lr: 0.5  # the rate\n      | ^~"),
    # a span over several lines: marked to the end of its first line
    (Diagnostic("m", span=Span("f.yaml", 3, 19, 5, 1, text=LINE)),
     "f.yaml:3:19: error: m\n    3 |   lr: 0.5  # the rate\n      |                   ^~~"),
    (Diagnostic("m", span=at(3, 5, line=12345)),
     "f.yaml:12345:3: error: m\n12345 |   lr: 0.5  # the rate\n      |   ^~"),
    # the source line escaped, the caret still under the character it marks
    (Diagnostic("m", span=at(3, 4, text="a\x1bb")), "f.yaml:3:3: error: m\n    3 | a\\x1bb\n      |      ^"),
    (Diagnostic("m", span=at(2, 3, text="a\x1bb")), "f.yaml:3:2: error: m\n    3 | a\\x1bb\n      |  ^~~~"),
]


@pytest.mark.parametrize("diagnostic, text", RENDER_TABLE)
def test_render_one(diagnostic, text):
    assert render_one(diagnostic) == text
    assert render_one(diagnostic, color=False) == text


def test_render_one_in_color():
    d = Diagnostic("bad", span=at(7, 10), path=("lr",), hint="smaller")
    assert render_one(d, color=True) == (
        "f.yaml:3:7: \033[31merror\033[0m: \033[1mlr\033[0m: bad\n    3 |   lr: 0.5  # the rate\n      |       ^~~\n"
        "      \033[36mhint:\033[0m smaller"
    )
    assert render_one(Diagnostic("w", severity=WARNING), color=True) == "\033[33mwarning\033[0m: w"
    assert render_one(Diagnostic("n", severity=NOTE), color=True) == "\033[36mnote\033[0m: n"


def test_the_source_line_is_read_from_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\nbb: 2\n")
    d = Diagnostic("m", span=Span(str(path), 2, 5, 2, 6))
    assert render_one(d) == f"{path}:2:5: error: m\n    2 | bb: 2\n      |     ^"
    beyond = Diagnostic("m", span=Span(str(path), 3, 1, 3, 2))  # no such line: no excerpt
    assert render_one(beyond) == f"{path}:3:1: error: m"
    missing = Diagnostic("m", span=Span(str(tmp_path / "gone.yaml"), 1, 1, 1, 2))
    assert render_one(missing) == f"{tmp_path / 'gone.yaml'}:1:1: error: m"


def test_an_empty_source_line_gets_a_caret():
    assert render_one(Diagnostic("m", span=at(1, 2, text=""))) == "f.yaml:3:1: error: m\n    3 | \n      | ^"


LONG = "".join(string.ascii_letters[i % 52] for i in range(300))


@pytest.mark.parametrize("col, start", [
    (1, 0), (34, 0),  # near the start: the line from its start
    (35, 1),  # the window starts 33 characters before the caret
    (150, 116),
    (201, 167), (233, 199),
    (234, 200), (300, 200),  # near the end: the last 100 characters
])
def test_a_long_source_line_is_shown_around_the_caret(col, start):
    excerpt = render_one(Diagnostic("m", span=at(col, col + 1, text=LONG))).splitlines()[1:]
    shown = LONG[start:start + 100]
    before = ("..." if start else "") + LONG[start:col - 1]
    assert excerpt[0] == "    3 | " + ("..." if start else "") + shown + ("..." if start + 100 < 300 else "")
    assert excerpt[1] == "      | " + " " * len(before) + "^"


def test_a_long_mark_is_cut_at_the_end_of_the_window():
    excerpt = render_one(Diagnostic("m", span=at(1, 301, text=LONG))).splitlines()
    assert excerpt[2] == "      | ^" + "~" * 99


@pytest.mark.parametrize("field", ["message", "hint", "path", "file"])
def test_long_texts_are_cut_and_escaped_in_text(field):
    text = "\x1b" + "y" * 3000
    d = Diagnostic(text if field == "message" else "m", hint=text if field == "hint" else None,
                   path=(text,) if field == "path" else (), span=Span(text, 1, 1, 1, 2) if field == "file" else None)
    limit = {"message": diag.MESSAGE_CHARS, "hint": diag.MESSAGE_CHARS, "path": diag.PATH_CHARS,
             "file": diag.FILE_CHARS}[field]
    assert cut(printable(text), limit) in render_one(d)
    assert "\x1b" not in render_one(d)


# --- folding: a screenful, not a copy of the file ------------------------------------------------------------------


def _many(n: int, message: str = "same", severity: str = ERROR, code: str = "c") -> list[Diagnostic]:
    return [Diagnostic(message, span=Span("f.yaml", i + 1, 1, i + 1, 2), path=("k", i), severity=severity, code=code)
            for i in range(n)]


def test_fold_sorts_by_file_line_column_errors_first_unpositioned_last():
    unplaced = Diagnostic("no place")
    warning = Diagnostic("w", span=Span("a.yaml", 2, 1, 2, 2), severity=WARNING)
    error = Diagnostic("e", span=Span("a.yaml", 2, 1, 2, 2))
    later_column = Diagnostic("c", span=Span("a.yaml", 2, 5, 2, 6))
    earlier_line = Diagnostic("l", span=Span("a.yaml", 1, 9, 1, 10))
    other_file = Diagnostic("b", span=Span("b.yaml", 1, 1, 1, 2))
    folded = fold([unplaced, other_file, later_column, warning, error, earlier_line])
    assert [d.message for d in folded] == ["l", "e", "w", "c", "b", "no place"]


@pytest.mark.parametrize("n", [0, 1, MAX_REPORTED_PER_MESSAGE])
def test_up_to_the_limit_repeats_of_a_message_are_all_shown(n):
    assert fold(_many(n)) == _many(n)


@pytest.mark.parametrize("extra", [1, 2, 1000])
def test_repeats_past_the_limit_are_counted_in_one_line_at_the_first_left_out(extra):
    many = _many(MAX_REPORTED_PER_MESSAGE + extra)
    folded = fold(many)
    assert folded[:-1] == many[:MAX_REPORTED_PER_MESSAGE]
    first_left_out = many[MAX_REPORTED_PER_MESSAGE]
    assert folded[-1].message == f"and {extra:,} more like this (from k.{MAX_REPORTED_PER_MESSAGE} on): same"
    assert (folded[-1].span, folded[-1].severity, folded[-1].code) == (first_left_out.span, ERROR, "folded")


def test_repeats_are_counted_per_severity_code_and_message():
    limit = MAX_REPORTED_PER_MESSAGE
    mixed = _many(limit, "same") + _many(limit, "same", severity=WARNING) + _many(limit, "same", code="other") + \
        _many(limit, "other")
    assert len(fold(mixed)) == 4 * limit


def test_an_unplaced_repeat_is_folded_from_here():
    folded = fold([Diagnostic("m")] * (MAX_REPORTED_PER_MESSAGE + 1))
    assert folded[-1].message == "and 1 more like this (from here on): m" and folded[-1].span is None


@pytest.mark.parametrize("n", [MAX_REPORTED - 1, MAX_REPORTED])
def test_up_to_the_total_limit_everything_is_shown(n):
    distinct = [Diagnostic(f"m{i}", span=Span("f.yaml", i + 1, 1, i + 1, 2)) for i in range(n)]
    assert fold(distinct) == distinct


@pytest.mark.parametrize("extra, warnings, severity, text", [
    (1, 0, ERROR, "and 1 more (1 errors) not shown; fix these first"),
    (3, 1, ERROR, "and 3 more (2 errors) not shown; fix these first"),
    (2, 2, WARNING, "and 2 more (0 errors) not shown; fix these first"),
])
def test_past_the_total_limit_the_rest_is_counted(extra, warnings, severity, text):
    errors = [Diagnostic(f"e{i}", span=Span("f.yaml", i + 1, 1, i + 1, 2)) for i in range(MAX_REPORTED + extra
                                                                                          - warnings)]
    late_warnings = [Diagnostic(f"w{i}", span=Span("f.yaml", 10_000 + i, 1, 1, 2), severity=WARNING)
                     for i in range(warnings)]
    folded = fold(late_warnings + errors)
    assert len(folded) == MAX_REPORTED + 1
    assert folded[:MAX_REPORTED] == errors[:MAX_REPORTED]
    assert (folded[-1].message, folded[-1].severity, folded[-1].code, folded[-1].span) == (text, severity, "folded",
                                                                                           None)


def test_render_text_and_json_show_the_folded_list():
    many = _many(MAX_REPORTED_PER_MESSAGE + 2)
    text = render_text(many)
    assert text.count("error: k.") == MAX_REPORTED_PER_MESSAGE
    assert text.endswith("f.yaml:6:1: error: and 2 more like this (from k.5 on): same")
    assert render_text([]) == ""
    shown = json.loads(render_json(many))
    assert shown == [d.to_dict() for d in fold(many)]
    assert render_json([]) == "[]"
    assert render_json([Diagnostic("m")]) == json.dumps([Diagnostic("m").to_dict()], indent=2)
