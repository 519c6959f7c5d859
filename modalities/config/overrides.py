"""``--set dotted.path=value`` overrides, applied to the Document before interpolation is resolved."""

from __future__ import annotations

import re
from typing import Any, Iterable

from modalities.config.diagnostics import PATH_CHARS, ConfigError, Diagnostic, cut
from modalities.config.limits import MAX_DEPTH
from modalities.config.load import Document, load_value
from modalities.config.spans import OVERRIDE_FILE, Span, mapping_key, path_part

# A byte of a command-line argument that was not UTF-8 reaches Python as a lone surrogate (PEP 383).
_UNDECODABLE = re.compile("[\ud800-\udfff]")


def parse_override_value(text: str, span: Span | None = None) -> Any:
    """The value of an override is YAML: ``3e-4`` is a float, ``[1, 2]`` a list, ``foo`` a string, ``null`` None; an
    empty or blank text is ``""``; text that is not YAML (``a: b: c``, ``[1``) stays text as written. Read within
    the limits of a config file: a value that nests too deep, contains itself through an alias or has an impossible
    tag raises ConfigError (positioned at ``span``)."""
    if not text.strip():
        return ""
    try:
        return load_value(text, OVERRIDE_FILE, span)
    except ConfigError as e:
        if all(d.code == "yaml-syntax" for d in e.diagnostics):
            return text
        raise


def apply_overrides(document: Document, overrides: Iterable[str]) -> list[Diagnostic]:
    """Apply each ``dotted.path=value`` flag in order to ``document`` (in place); the diagnostics of the flags
    that could not be applied (each changes nothing; the others still apply). The path is what comes before
    the first ``=``, stripped; a part names a mapping's key as written where it has it, else its integer key
    where it has that (``1`` for ``m.1``, ``m.01`` or ``m.+1``; see spans.mapping_key), else a new key (a
    string, as OmegaConf.update makes it; missing branches are made); a list's item by an index
    0..len-1. Refused: no ``=`` or an empty path, text that is not UTF-8, a value that is not plain data (see
    parse_override_value), a path and value nesting deeper than MAX_DEPTH, a list index out of range or not
    digits, a path through a scalar. The set value is positioned in the flag (``<--set>``; the key at columns
    1..len(path), the value after the ``=``), and the positions of what it replaced are forgotten."""
    diagnostics: list[Diagnostic] = []
    for flag in overrides:
        span = Span(OVERRIDE_FILE, 1, 1, 1, len(flag) + 1, text=flag)
        key, sep, raw = flag.partition("=")
        key = key.strip()
        problem = _flag_problem(flag, key, sep)
        if problem is not None:
            diagnostics.append(problem)
            continue
        written = key.split(".")
        parts: list = [path_part(p) for p in written]
        value_span = Span(OVERRIDE_FILE, 1, len(key) + 2, 1, len(flag) + 1, text=flag)
        try:
            value = parse_override_value(raw, value_span)
        except ConfigError as e:
            for d in e.diagnostics:
                d.message = f"--set {cut(key, PATH_CHARS)}: {d.message}"
            diagnostics.extend(e.diagnostics)
            continue
        depth = len(parts) + _depth(value)
        if depth > MAX_DEPTH:
            diagnostics.append(Diagnostic(
                f"--set {cut(key, PATH_CHARS)}: the path ({len(parts):,} parts) and its value nest {depth:,} levels "
                f"deep; a config may nest at most {MAX_DEPTH}", span=span, code="limit",
            ))
            continue
        replaced = _value_at(document.values, parts, written)
        problem = _set_at(document.values, parts, value, written)
        if problem:
            message = f"cannot apply --set {cut(key, PATH_CHARS)}: {problem}"
            diagnostics.append(Diagnostic(message, span=span, code="override"))
            continue
        path = tuple(parts)
        document.source_map.drop_subtree(path, replaced)
        document.source_map.values[path] = Span(OVERRIDE_FILE, 1, len(key) + 2, 1, len(flag) + 1, text=flag)
        document.source_map.keys[path] = Span(OVERRIDE_FILE, 1, 1, 1, len(key) + 1, text=flag)
    return diagnostics


def _flag_problem(flag: str, key: str, sep: str) -> Diagnostic | None:
    """What makes a flag unusable before its value is read: no ``path=``, or text that is not UTF-8."""
    if not sep or not key:
        return Diagnostic(
            f"override '{cut(flag, PATH_CHARS)}' is not of the form dotted.path=value",
            span=Span(OVERRIDE_FILE, 1, 1, 1, len(flag) + 1, text=flag),
            code="override",
        )
    bad = _UNDECODABLE.search(flag)
    if bad is None:
        return None
    where = "path" if bad.start() < flag.index("=") else "value"
    return Diagnostic(
        f"--set {cut(key, PATH_CHARS)}: the {where} is not UTF-8 text (the byte at column {bad.start() + 1} "
        "cannot be decoded)",
        span=Span(OVERRIDE_FILE, 1, bad.start() + 1, 1, bad.start() + 2, text=flag),
        hint="a config is UTF-8 text; check the shell's encoding (locale), or, for a file name that is not UTF-8, "
        "link to the file under a UTF-8 name",
        code="override",
    )


def _depth(value: Any) -> int:
    """Nesting levels of a plain value, without recursion."""
    deepest, pending = 0, [(value, 0)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level + 1)
            pending.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _value_at(root: Any, parts: list, written: list[str]) -> Any:
    """The value at ``parts`` (as _set_at reads them), or None where there is none."""
    node = root
    for part, text in zip(parts, written):
        if isinstance(node, dict):
            node = node.get(mapping_key(node, text))
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return None
    return node


def _set_at(root: Any, parts: list, value: Any, written: list[str]) -> str | None:
    """Set ``value`` at ``parts`` (``path_part`` of each text ``written``: a mapping key or a list index per part),
    creating missing mapping branches; None when set, else the text of what is wrong (nothing is changed then).
    ``parts`` is updated in place to the keys as the document spells them (a part names a mapping's key as
    written, "1" or "01", where it has one, else its integer key 1 where it has that, else a new key as written), so
    positions are recorded at the right path. A list takes the indices 0..len-1 only (a digit part; nothing is
    appended)."""
    node = root
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, dict):
            found = mapping_key(node, written[i])  # "01" names the key "01" where there is one, else the key 1
            part = parts[i] = written[i] if found is None else found
            if last:
                node[part] = value
            else:
                if part not in node:
                    node[part] = {}  # a new branch: validation reports it if the config class has no such field
                node = node[part]
        elif isinstance(node, list):
            parent = cut(".".join(map(str, parts[:i])), PATH_CHARS)
            indices = f"indices 0..{len(node) - 1}" if node else "no index: it is empty"
            if not isinstance(part, int) or part >= len(node):
                shown = cut(str(part), PATH_CHARS)
                return f"'{parent}' is a list of {len(node)} item(s), {indices}; '{shown}' is not one of them"
            if last:
                node[part] = value
            else:
                node = node[part]
        else:
            parent = cut(".".join(map(str, parts[:i])), PATH_CHARS) or "the config"
            where = cut(".".join(map(str, parts[: i + 1])), PATH_CHARS)
            return f"'{parent}' is {_kind(node)}, not a mapping or list, so '{where}' cannot be set"
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value[:40]!r})"
    return f"a {type(value).__name__}"
