"""Diagnostics: collected by every stage, never raised mid-stage, rendered as text or JSON at the end."""

from __future__ import annotations

import difflib
import json
import linecache
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
        span = self.span
        return {
            "severity": self.severity,
            "code": self.code,
            "path": dotted(self.path),
            "message": self.message,
            "hint": self.hint,
            "file": span.file if span else None,
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
    return any(d.severity == ERROR for d in diagnostics)


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidates, or None."""
    matches = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=3, cutoff=0.6)
    if not matches:
        return None
    return "did you mean " + " or ".join(f"'{m}'" for m in matches) + "?"


def sort_key(d: Diagnostic) -> tuple:
    s = d.span
    return (s.file if s else "~", s.line if s else 0, s.col if s else 0, d.severity != ERROR)


def _source_line(span: Span) -> str | None:
    if span.text is not None:
        return span.text
    line = linecache.getline(span.file, span.line)
    return line.rstrip("\n") if line else None


EXCERPT_CHARS = 100  # of a source line shown under a message: long (generated) lines are cut around the caret
MESSAGE_CHARS = 1000


def _excerpt(span: Span) -> list[str]:
    line = _source_line(span)
    if line is None:
        return []
    width = max(1, (span.end_col - span.col) if span.end_line == span.line else len(line) - span.col + 1)
    start = max(0, min(span.col - 1 - EXCERPT_CHARS // 3, len(line) - EXCERPT_CHARS))
    end = start + EXCERPT_CHARS
    shown = ("..." if start else "") + line[start:end] + ("..." if end < len(line) else "")
    caret_at = span.col - 1 - start + (3 if start else 0)
    width = min(width, EXCERPT_CHARS - (span.col - 1 - start))
    gutter = f"{span.line:>5} | "
    return [gutter + shown, " " * (len(gutter) - 2) + "| " + " " * caret_at + "^" + "~" * (width - 1)]


def _shortened(message: str) -> str:
    if len(message) <= MESSAGE_CHARS:
        return message
    return message[:MESSAGE_CHARS] + f"... ({len(message) - MESSAGE_CHARS:,} more characters)"


def fold(diagnostics: Sequence[Diagnostic]) -> list[Diagnostic]:
    """Sorted, with repeats of one message past MAX_REPORTED_PER_MESSAGE folded into one "and N more like this"
    (at the first one left out), and at most MAX_REPORTED in all, so that a long list of wrong items reports a
    screenful, not a copy of the file."""
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
    red, yellow, cyan, bold, reset = ("\033[31m", "\033[33m", "\033[36m", "\033[1m", "\033[0m") if color else ("",) * 5
    where = f"{d.span}: " if d.span else ""
    sev = f"{ {ERROR: red, WARNING: yellow}.get(d.severity, cyan)}{d.severity}{reset}"
    key = f"{bold}{dotted(d.path)}{reset}: " if d.path else ""
    lines = [f"{where}{sev}: {key}{_shortened(d.message)}"]
    if d.span:
        lines.extend(_excerpt(d.span))
    if d.hint:
        lines.append(f"      {cyan}hint:{reset} {d.hint}")
    return "\n".join(lines)


def render_text(diagnostics: Sequence[Diagnostic], color: bool = False) -> str:
    return "\n".join(render_one(d, color) for d in fold(diagnostics))


def render_json(diagnostics: Sequence[Diagnostic]) -> str:
    return json.dumps([d.to_dict() for d in fold(diagnostics)], indent=2)
