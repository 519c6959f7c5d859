"""Where every key and value of a config came from, kept beside the values (never inside them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

Path = tuple  # a path into the document: keys (str) and list indices (int)

OVERRIDE_FILE = "<--set>"
_UNKNOWN = object()


@dataclass(frozen=True)
class Span:
    """1-based line and column of a range in a file. ``text`` holds the source line when it is not a file
    (a ``--set`` flag)."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int
    text: str | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass
class SourceMap:
    values: dict[Path, Span] = field(default_factory=dict)
    keys: dict[Path, Span] = field(default_factory=dict)

    def value(self, path: Path) -> Span | None:
        """The span of the value at ``path``, or of its nearest ancestor that has one (the root's, path ``()``, last);
        None when neither the path nor any ancestor has one."""
        for prefix in _prefixes(tuple(path)):
            span = self.values.get(prefix)
            if span is not None:
                return span
        return None

    def key(self, path: Path) -> Span | None:
        """The span of the key that names ``path``; without one, ``value(path)`` (None where that is None)."""
        return self.keys.get(tuple(path)) or self.value(path)

    def copy_subtree(self, source: Path, target: Path, value: Any = _UNKNOWN) -> None:
        """Give the paths under ``target`` the spans of the same paths under ``source``, in both tables. Only paths
        strictly below ``source`` are copied: ``target`` keeps its own span, and spans already under ``target`` that
        ``source`` has no counterpart for stay. With ``value`` (what is at ``source``) only its paths are looked up,
        in time linear in its size, not in the whole map's."""
        source, target = tuple(source), tuple(target)
        n = len(source)
        for table in (self.values, self.keys):
            if value is _UNKNOWN:
                additions = {target + p[n:]: s for p, s in table.items() if p[:n] == source and len(p) > n}
            else:
                additions = {target + p[n:]: table[p] for p in subtree_paths(value, source) if p in table}
            table.update(additions)

    def drop_subtree(self, path: Path, value: Any = _UNKNOWN) -> None:
        """Forget the spans strictly under ``path`` in both tables; ``path``'s own stay (with ``value``, what was
        there: only its paths are looked at)."""
        path = tuple(path)
        n = len(path)
        for table in (self.values, self.keys):
            if value is _UNKNOWN:
                gone = [p for p in table if p[:n] == path and len(p) > n]
            else:
                gone = [p for p in subtree_paths(value, path) if p in table]
            for p in gone:
                del table[p]


def subtree_paths(value: Any, prefix: Path) -> Iterator[Path]:
    """The paths below ``prefix`` of a plain value (mappings and lists), without recursion: not ``prefix``
    itself, nothing for a scalar or an empty container; in no particular order."""
    pending = [(tuple(prefix), value)]
    while pending:
        path, item = pending.pop()
        children = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
        for key, child in children:
            pending.append((path + (key,), child))
            yield path + (key,)


def _prefixes(path: Path) -> Iterator[Path]:
    for i in range(len(path), -1, -1):
        yield path[:i]


def path_part(text: str) -> int | str:
    """One part of a dotted path as written (``--set``, ``instance_key``): a list index (int) for plain ASCII
    digits of at most 18 characters (``"007"`` -> 7; no list is longer), else the text as a key (``"-1"``, ``""``,
    19 digits, digits of other scripts)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else text


def mapping_key(mapping: dict, part: str) -> Any:
    """The key of ``mapping`` that one part of a dotted path names, as OmegaConf reads a part (``${m.7}``,
    ``--set m.7=x``): the key as written where the mapping has it, else the integer key that Python's ``int``
    reads in the text (``7``, ``07`` and ``+7`` name the YAML key ``7``; ``-1`` the key ``-1``) where it has that;
    None where it has neither (keys are strings or integers, never None)."""
    if part in mapping:
        return part
    try:
        number = int(part)
    except ValueError:
        return None
    return number if number in mapping else None


def list_index(part: object, length: int) -> int | None:
    """The index (0..length-1) of a list of ``length`` items that ``part`` names: ``0``..``length-1`` as they
    are, ``-1``..``-length`` counted from the end; None for anything else (``length`` or more, below
    ``-length``, an empty list, text that is not an optional ``-`` and 1 to 18 ASCII digits)."""
    text = str(part)
    digits = text[1:] if text.startswith("-") else text
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 18):
        return None
    index = int(text)
    return index % length if -length <= index < length else None


def dotted(path: Path) -> str:
    """``("model", "config", "layers", 0)`` -> ``model.config.layers.0``; ``()`` -> ``""``."""
    return ".".join(str(p) for p in path)


def get_at(values: Any, path: Path) -> Any:
    """The value at ``path`` (``values`` itself for ``()``); KeyError, IndexError or TypeError where there is none."""
    for part in path:
        values = values[part]
    return values
