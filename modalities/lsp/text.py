"""Positions and the YAML context of a cursor, from text alone.

The compiler's spans are 1-based lines and columns counted in characters (code points); LSP positions are
0-based, their columns in UTF-16 code units (the protocol's default) or the encoding agreed at initialization. Completion must also work on
text that does not parse while it is typed (``    wei`` alone on a line), so the context of a cursor (the keys
that lead to it, whether it stands on a key or a value) is read from indentation, as a person reads YAML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lsprotocol import types as lsp

from modalities.config.spans import Span

_KEY = re.compile(r"""(?P<key>"[^"]*"|'[^']*'|[^\s#'"{\[\-][^:#]*?|-[^\s:#][^:#]*?)\s*:(?=\s|$)""")
INTERPOLATION_START = "${"


# How LSP columns count: UTF-16 code units unless the client and server agreed on another encoding at
# initialization (one client per server process, so one setting).
_UNIT_COUNTS = {
    "utf-8": lambda text: len(text.encode("utf-8", "surrogatepass")),
    "utf-16": lambda text: len(text.encode("utf-16-le", "surrogatepass")) // 2,
    "utf-32": len,
}
_encoding = "utf-16"


def use_position_encoding(encoding: str | None) -> None:
    """Count columns as the client and server agreed (``utf-8``, ``utf-16`` or ``utf-32``)."""
    global _encoding
    _encoding = str(encoding) if str(encoding) in _UNIT_COUNTS else "utf-16"


def client_column(line: str, column: int) -> int:
    """The LSP column of the character column ``column`` (0-based) of ``line``."""
    prefix = line[:column]
    return column if prefix.isascii() else _UNIT_COUNTS[_encoding](prefix)


def character_column(line: str, units: int) -> int:
    """The character column (0-based) of an LSP column of ``line``."""
    if line.isascii():
        return units
    count = _UNIT_COUNTS[_encoding]
    for index in range(len(line) + 1):
        if count(line[:index]) >= units:
            return index
    return len(line)


def position(lines: list[str], line: int, column: int) -> lsp.Position:
    """The LSP position of a 0-based line and character column."""
    text = lines[line] if 0 <= line < len(lines) else ""
    return lsp.Position(line=max(line, 0), character=client_column(text, max(column, 0)))


def span_range(span: Span | None, lines: list[str]) -> lsp.Range:
    """A compiler span as an LSP range (the first character of the file when there is none)."""
    if span is None:
        return lsp.Range(start=lsp.Position(line=0, character=0), end=lsp.Position(line=0, character=1))
    start = position(lines, span.line - 1, span.col - 1)
    end = position(lines, span.end_line - 1, span.end_col - 1)
    if (end.line, end.character) <= (start.line, start.character):
        end = lsp.Position(line=start.line, character=start.character + 1)
    return lsp.Range(start=start, end=end)


def contains(span: Span, line: int, column: int) -> bool:
    """Whether the 1-based (line, column) lies in ``span``, its end included (a cursor just after a word)."""
    return (span.line, span.col) <= (line, column) <= (span.end_line, span.end_col)


@dataclass
class Frame:
    indent: int
    key: str | int  # a mapping key, or the index of a list item
    line: int  # 0-based line of the key (or the item's dash)
    items: int = 0  # list items seen under this key so far


@dataclass
class CursorContext:
    """Where a cursor stands: ``path`` leads to the mapping (or list item) holding its line; on a ``key: value``
    line ``key`` is set, and ``on_value`` says whether the cursor is past the colon. ``word`` is the text being
    typed before the cursor (from ``word_start``, a character column). ``frames`` holds each part of the path
    with the line it is written on."""

    path: tuple
    frames: list[Frame] = field(default_factory=list)
    key: str | None = None
    on_value: bool = False
    word: str = ""
    word_start: int = 0
    interpolation: str | None = None  # the text of an unclosed ``${`` before the cursor


def _strip_key(key: str) -> str:
    key = key.strip()
    if len(key) >= 2 and key[0] == key[-1] and key[0] in "'\"":
        return key[1:-1]
    return key


def _parse_line(text: str, indent: int, frames: list[Frame], line_no: int) -> tuple[int, str]:
    """Open the list items (``- ``) that start ``text`` (which begins at ``indent``); returns where its content
    begins and the content."""
    while text.startswith("- ") or text == "-":
        while frames and (frames[-1].indent > indent or (frames[-1].indent == indent
                                                          and isinstance(frames[-1].key, int))):
            frames.pop()
        parent = frames[-1] if frames else None
        index = parent.items if parent is not None else 0
        if parent is not None:
            parent.items += 1
        frames.append(Frame(indent, index, line_no))
        rest = text[1:].lstrip(" ")
        indent += len(text) - len(rest)
        text = rest
    return indent, text


def cursor_context(lines: list[str], line: int, column: int) -> CursorContext:
    """The context of a cursor at 0-based ``line`` and character ``column``."""
    frames: list[Frame] = []
    for number in range(min(line, len(lines))):
        raw = lines[number]
        stripped = raw.lstrip(" ")
        if not stripped or stripped.startswith(("#", "---")):
            continue
        indent, content = _parse_line(stripped, len(raw) - len(stripped), frames, number)
        match = _KEY.match(content)
        while frames and frames[-1].indent >= indent and not (isinstance(frames[-1].key, int)
                                                               and frames[-1].indent < indent):
            frames.pop()
        if match:
            frames.append(Frame(indent, _strip_key(match.group("key")), number))
    text = lines[line][:column] if line < len(lines) else ""
    stripped = text.lstrip(" ")
    indent, content = _parse_line(stripped, len(text) - len(stripped), frames, line)
    while frames and frames[-1].indent >= indent and not (isinstance(frames[-1].key, int)
                                                          and frames[-1].indent < indent):
        frames.pop()
    context = CursorContext(path=tuple(f.key for f in frames), frames=list(frames))
    full_line = lines[line] if line < len(lines) else ""
    match = _KEY.match(full_line[indent:])
    if match and indent + match.end() <= column:
        context.key = _strip_key(match.group("key"))
        context.on_value = True
    word = re.search(r"[\w\-]*$", text)
    context.word = word.group(0) if word else ""
    context.word_start = column - len(context.word)
    opened = text.rfind(INTERPOLATION_START)
    if opened >= 0 and "}" not in text[opened:]:
        context.interpolation = text[opened + 2 :]
        context.word = re.search(r"[^.:${\s]*$", context.interpolation).group(0)
        context.word_start = column - len(context.word)
    elif not context.on_value:
        context.word = content.strip()
        context.word_start = indent
    return context


def _content(text: str) -> tuple[int, str, bool]:
    """(where the content of a line begins, the content, whether the line starts a list item)."""
    stripped = text.lstrip(" ")
    indent, content = _parse_line(stripped, len(text) - len(stripped), [], 0)
    return indent, content, content is not stripped


def mapping_scalars(lines: list[str], line: int) -> dict[str, str]:
    """The ``key: scalar`` pairs of the block mapping that holds 0-based ``line`` (the siblings of its key)."""
    indent, _, starts_item = _content(lines[line])
    found: dict[str, str] = {}

    def record(content: str) -> None:
        match = _KEY.match(content)
        if match:
            value = content[match.end() :].split(" #")[0].strip()
            found.setdefault(_strip_key(match.group("key")), _strip_key(value) if value else "")

    for number in range(line, len(lines)):
        if not lines[number].strip() or lines[number].lstrip().startswith("#"):
            continue
        own_indent, content, item = _content(lines[number])
        if own_indent < indent or (own_indent == indent and item and number != line):
            break  # the mapping ended, or the next list item began
        if own_indent == indent:
            record(content)
    for number in range(line - 1, -1, -1) if not starts_item else ():
        if not lines[number].strip() or lines[number].lstrip().startswith("#"):
            continue
        own_indent, content, item = _content(lines[number])
        if own_indent < indent:
            break
        if own_indent == indent:
            record(content)
            if item:
                break  # the first line of this list item
    return found


def top_level_keys(lines: list[str]) -> list[str]:
    """The keys written at the top level of the text (column 0), whether or not the text parses."""
    keys = []
    for line in lines:
        match = _KEY.match(line) if line[:1] not in ("", " ", "#", "-") else None
        if match:
            keys.append(_strip_key(match.group("key")))
    return keys
