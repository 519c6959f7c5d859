"""Diagnostics: collected by every stage, never raised mid-stage, rendered as text or JSON at the end."""

from __future__ import annotations

import difflib
import json
import linecache
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from modalities.config.spans import Path, Span, dotted

ERROR = "error"
WARNING = "warning"
NOTE = "note"  # how something is carried out; nothing to change


@dataclass
class Diagnostic:
    message: str
    span: Span | None = None
    path: Path = ()
    severity: str = ERROR
    hint: str | None = None
    code: str = ""

    def to_dict(self) -> dict:
        """Plain data for JSON: long texts cut in the middle (json.dumps escapes what is not printable)."""
        span = self.span
        return {
            "severity": self.severity,
            "code": self.code,
            "path": cut(dotted(self.path), PATH_CHARS),
            "message": cut(self.message, MESSAGE_CHARS),
            "hint": cut(self.hint, MESSAGE_CHARS) if self.hint is not None else None,
            "file": cut(span.file, FILE_CHARS) if span else None,
            "line": span.line if span else None,
            "column": span.col if span else None,
            "end_line": span.end_line if span else None,
            "end_column": span.end_col if span else None,
        }


class ConfigError(Exception):
    """Raised at a stage boundary when the diagnostics collected so far include errors."""

    def __init__(self, diagnostics: Sequence[Diagnostic]):
        self.diagnostics = list(diagnostics)
        super().__init__(render_text(self.diagnostics, color=False))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == ERROR]


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    """Whether one of them is an ERROR (warnings and notes are not; an empty list has none)."""
    return any(d.severity == ERROR for d in diagnostics)


# did-you-mean compares names, not texts: difflib's matching is quadratic in the lengths it compares, so a word or
# candidate longer than this is no name anyone misspelt, and only so many candidates are compared.
SUGGEST_CHARS = 100
SUGGEST_CANDIDATES = 10_000


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """"did you mean 'a' or 'b' or 'c'?": the (at most three) candidates at least 0.6 similar to ``word``, closest
    first, escaped with ``printable``; None when none is, when ``word`` is longer than SUGGEST_CHARS (a
    candidate that long is skipped), or when there are no candidates. Only the first SUGGEST_CANDIDATES
    candidates are compared."""
    word = str(word)
    if len(word) > SUGGEST_CHARS:
        return None
    names = []
    for candidate in candidates:
        candidate = str(candidate)
        if len(candidate) <= SUGGEST_CHARS:
            names.append(candidate)
            if len(names) >= SUGGEST_CANDIDATES:
                break
    matches = difflib.get_close_matches(word, names, n=3, cutoff=0.6)
    if not matches:
        return None
    return "did you mean " + " or ".join(f"'{printable(m)}'" for m in matches) + "?"


# What must not reach a terminal as it is: C0 controls but tab and newline, DEL, C1 controls, line and
# paragraph separators, bidirectional overrides and isolates, and lone surrogates (the bytes of a command-line
# argument or file name that were not UTF-8, as Python hands them over).
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8: shown as that byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` as it may be shown on a terminal: what is not printable (see _UNPRINTABLE) as an escape, e.g.
    ``\\x1b`` for ESC and ``\\xff`` for the byte 0xff of a file name that is not UTF-8."""
    return _UNPRINTABLE.sub(_escape, text) if _UNPRINTABLE.search(text) else text


def cut(text: str, limit: int) -> str:
    """``text`` as it is when at most ``limit`` characters long; else cut in the middle, keeping its first
    ``limit * 2 // 3`` and its last ``limit // 3`` characters around "...(N characters cut)..." (the end is where a
    message usually says what to do)."""
    if len(text) <= limit:
        return text
    head, tail = limit * 2 // 3, limit // 3
    return f"{text[:head]}...({len(text) - head - tail:,} characters cut)...{text[-tail:]}"


def sort_key(d: Diagnostic) -> tuple:
    s = d.span
    return (s.file if s else "~", s.line if s else 0, s.col if s else 0, d.severity != ERROR)


def _source_line(span: Span) -> str | None:
    if span.text is not None:
        return span.text
    line = linecache.getline(span.file, span.line)
    return line.rstrip("\n") if line else None


EXCERPT_CHARS = 100  # of a source line shown under a message: long (generated) lines are cut around the caret
MESSAGE_CHARS = 1000  # of a message or hint (long values quoted in it are cut in the middle)
PATH_CHARS = 200  # of the dotted path a message is about
FILE_CHARS = 1000  # of a file name


def _excerpt(span: Span) -> list[str]:
    """The source line around the span (escaped where not printable, so the caret still points at it)."""
    line = _source_line(span)
    if line is None:
        return []
    col = min(max(span.col, 1), len(line) + 1)
    width = max(1, (span.end_col - col) if span.end_line == span.line else len(line) - col + 1)
    start = max(0, min(col - 1 - EXCERPT_CHARS // 3, len(line) - EXCERPT_CHARS))
    end = start + EXCERPT_CHARS
    before = ("..." if start else "") + printable(line[start : col - 1])
    marked = printable(line[col - 1 : min(end, col - 1 + width)]) or " "
    shown = before + printable(line[col - 1 : end]) + ("..." if end < len(line) else "")
    gutter = f"{span.line:>5} | "
    return [gutter + shown, " " * (len(gutter) - 2) + "| " + " " * len(before) + "^" + "~" * (len(marked) - 1)]


def _shown(text: str, limit: int) -> str:
    return cut(printable(text), limit)


def fold(diagnostics: Sequence[Diagnostic]) -> list[Diagnostic]:
    """Sorted (by file, line, column, errors before the rest at one place; unpositioned last), with repeats of
    one (severity, code, message) past MAX_REPORTED_PER_MESSAGE folded into one "and N more like this" (at the
    first one left out), and at most MAX_REPORTED in all plus one "and N more (E errors) not shown" line (an
    error if any left out is one), so that a long list of wrong items reports a screenful, not a copy of the
    file. Up to the limits the list is returned sorted and whole."""
    from modalities.config.limits import MAX_REPORTED, MAX_REPORTED_PER_MESSAGE

    ordered = sorted(diagnostics, key=sort_key)
    seen: dict[tuple, int] = {}
    first_left_out: dict[tuple, Diagnostic] = {}
    kept: list[Diagnostic] = []
    for d in ordered:
        key = (d.severity, d.code, d.message)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] <= MAX_REPORTED_PER_MESSAGE:
            kept.append(d)
        elif key not in first_left_out:
            first_left_out[key] = d
    for key, d in first_left_out.items():
        more = seen[key] - MAX_REPORTED_PER_MESSAGE
        kept.append(
            Diagnostic(
                f"and {more:,} more like this (from {dotted(d.path) or 'here'} on): {d.message}",
                span=d.span,
                severity=d.severity,
                code="folded",
            )
        )
    kept.sort(key=sort_key)
    if len(kept) > MAX_REPORTED:
        left = kept[MAX_REPORTED:]
        errors = sum(d.severity == ERROR for d in left)
        kept = kept[:MAX_REPORTED] + [
            Diagnostic(
                f"and {len(left):,} more ({errors:,} errors) not shown; fix these first",
                severity=ERROR if errors else WARNING,
                code="folded",
            )
        ]
    return kept


def render_one(d: Diagnostic, color: bool = False) -> str:
    """``file:line:col: severity: path: message`` (position and path only where known), then the source line
    (from ``span.text``, else the file; none where it cannot be read) with a caret under the span (at least one
    character, to the end of the line for a span over several lines, at the first column for a column before
    it), then the hint. Texts escaped and cut; ANSI colours only with ``color``."""
    red, yellow, cyan, bold, reset = ("\033[31m", "\033[33m", "\033[36m", "\033[1m", "\033[0m") if color else ("",) * 5
    where = f"{_shown(d.span.file, FILE_CHARS)}:{d.span.line}:{d.span.col}: " if d.span else ""
    sev = f"{ {ERROR: red, WARNING: yellow}.get(d.severity, cyan)}{d.severity}{reset}"
    key = f"{bold}{_shown(dotted(d.path), PATH_CHARS)}{reset}: " if d.path else ""
    lines = [f"{where}{sev}: {key}{_shown(d.message, MESSAGE_CHARS)}"]
    if d.span:
        lines.extend(_excerpt(d.span))
    if d.hint:
        lines.append(f"      {cyan}hint:{reset} {_shown(d.hint, MESSAGE_CHARS)}")
    return "\n".join(lines)


def render_text(diagnostics: Sequence[Diagnostic], color: bool = False) -> str:
    """The folded diagnostics (see fold), each rendered, one after another; "" for none."""
    return "\n".join(render_one(d, color) for d in fold(diagnostics))


def render_json(diagnostics: Sequence[Diagnostic]) -> str:
    """A JSON list of the folded diagnostics' ``to_dict()``; ``[]`` for none."""
    return json.dumps([d.to_dict() for d in fold(diagnostics)], indent=2)
