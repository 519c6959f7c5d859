"""``--set dotted.path=value`` overrides, applied to the Document before interpolation is resolved."""

from __future__ import annotations

from typing import Any, Iterable

from modalities.config.diagnostics import ConfigError, Diagnostic
from modalities.config.load import Document, load_value
from modalities.config.spans import OVERRIDE_FILE, Span


def parse_override_value(text: str, span: Span | None = None) -> Any:
    """The value of an override is YAML: ``3e-4`` is a float, ``[1, 2]`` a list, ``foo`` a string; text that is
    not YAML (``a: b: c``) stays text. Read within the limits of a config file: a value that nests too deep,
    contains itself through an alias or has an impossible tag raises ConfigError (positioned at ``span``)."""
    if not text.strip():
        return ""
    try:
        return load_value(text, OVERRIDE_FILE, span)
    except ConfigError as e:
        if all(d.code == "yaml-syntax" for d in e.diagnostics):
            return text
        raise


def apply_overrides(document: Document, overrides: Iterable[str]) -> list[Diagnostic]:
    diagnostics: list[Diagnostic] = []
    for flag in overrides:
        span = Span(OVERRIDE_FILE, 1, 1, 1, len(flag) + 1, text=flag)
        key, sep, raw = flag.partition("=")
        key = key.strip()
        if not sep or not key:
            diagnostics.append(
                Diagnostic(f"override '{flag}' is not of the form dotted.path=value", span=span, code="override")
            )
            continue
        parts = [int(p) if p.lstrip("-").isdigit() else p for p in key.split(".")]
        value_span = Span(OVERRIDE_FILE, 1, len(key) + 2, 1, len(flag) + 1, text=flag)
        try:
            value = parse_override_value(raw, value_span)
        except ConfigError as e:
            for d in e.diagnostics:
                d.message = f"--set {key}: {d.message}"
            diagnostics.extend(e.diagnostics)
            continue
        problem = _set_at(document.values, parts, value)
        if problem:
            diagnostics.append(Diagnostic(f"cannot apply --set {key}: {problem}", span=span, code="override"))
            continue
        path = tuple(parts)
        document.source_map.drop_subtree(path)
        document.source_map.values[path] = Span(OVERRIDE_FILE, 1, len(key) + 2, 1, len(flag) + 1, text=flag)
        document.source_map.keys[path] = Span(OVERRIDE_FILE, 1, 1, 1, len(key) + 1, text=flag)
    return diagnostics


def _set_at(root: Any, parts: list, value: Any) -> str | None:
    node = root
    for i, part in enumerate(parts[:-1]):
        where = ".".join(map(str, parts[: i + 1]))
        if isinstance(node, dict):
            if part not in node:
                node[part] = {}  # a new branch: validation reports it if the config class has no such field
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node):
            node = node[part]
        else:
            return f"'{where}' does not exist (or is not a mapping or list)"
    last = parts[-1]
    if isinstance(node, dict):
        node[last] = value
    elif isinstance(node, list) and isinstance(last, int) and -len(node) <= last < len(node):
        node[last] = value
    else:
        return f"'{'.'.join(map(str, parts))}' cannot be set: its parent is not a mapping or the index is out of range"
    return None
