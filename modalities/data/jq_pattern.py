"""The subset of jq paths that data configs use to pick a document's text: ``.text``, ``.a.b``, ``.a[0]``,
``.[0]``, ``.["key with spaces"]``. Written here so the packer needs no jq binary or bindings."""

from __future__ import annotations

import json
import re
from typing import Any

_STEP = re.compile(r'\.([A-Za-z_][A-Za-z0-9_]*)|\.?\[(\d+)\]|\.?\[("(?:[^"\\]|\\.)*")\]')


class JqPatternError(ValueError):
    pass


def compile_jq_pattern(pattern: str) -> tuple[str | int, ...]:
    """Parse ``pattern`` into a tuple of keys and list positions; ``.`` alone is the whole document (``()``).
    ``.a.b[0]`` -> ``("a", "b", 0)``; ``.["a key"]`` -> ``("a key",)``. JqPatternError (a ValueError) for a
    pattern that is not a string, does not start with ``.``, or has a piece outside this subset (naming it)."""
    if not isinstance(pattern, str) or not pattern.startswith("."):
        raise JqPatternError(f"jq pattern {pattern!r} must start with '.', e.g. '.text' or '.meta.body'")
    if pattern == ".":
        return ()
    steps: list[str | int] = []
    position = 0
    while position < len(pattern):
        match = _STEP.match(pattern, position)
        if match is None:
            raise JqPatternError(
                f"jq pattern {pattern!r}: cannot read {pattern[position:]!r}; supported are '.key', '.a.b', "
                "'.a[0]' and '.[\"some key\"]'"
            )
        name, number, quoted = match.groups()
        steps.append(name if name is not None else int(number) if number is not None else json.loads(quoted))
        position = match.end()
    return tuple(steps)


def apply_jq_pattern(steps: tuple[str | int, ...], document: Any) -> Any:
    """Follow ``steps`` into ``document``; raises KeyError with a readable message when a step is missing: a key
    absent or asked of a non-object, a position at or past the list's length (negative positions do not parse)
    or asked of a non-list, each naming the path up to the step."""
    value = document
    for depth, step in enumerate(steps):
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                raise KeyError(f"no element [{step}] at {_path(steps[:depth])}")
        elif not isinstance(value, dict) or step not in value:
            raise KeyError(f"no field '{step}' at {_path(steps[:depth])}")
        value = value[step]
    return value


def _path(steps: tuple[str | int, ...]) -> str:
    if not steps:
        return "the top level"
    return "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps)
