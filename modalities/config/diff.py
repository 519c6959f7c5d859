"""What differs between two resolved configs, value by value (``modalities diff A B``).

Both sides are compared after ``--set`` and ``${...}`` are resolved, so a change made through an interpolated
setting shows at every value it reaches. Each difference names the dotted path, the old and the new value and
where each came from. A subtree present on one side only is one difference, not one per leaf.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modalities.config.spans import OVERRIDE_FILE, Path, dotted

MISSING = object()


@dataclass
class Difference:
    path: Path
    old: Any  # MISSING when only the new side has it
    new: Any  # MISSING when only the old side has it
    old_origin: str
    new_origin: str

    def render(self) -> str:
        where = dotted(self.path) or "<root>"
        if self.old is MISSING:
            return f"+ {where}: {_show(self.new)} ({self.new_origin})"
        if self.new is MISSING:
            return f"- {where}: {_show(self.old)} ({self.old_origin})"
        return f"{where}: {_show(self.old)} ({self.old_origin}) -> {_show(self.new)} ({self.new_origin})"


def _show(value: Any) -> str:
    import json

    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def _same(a: Any, b: Any) -> bool:
    # 1 and 1.0, or 1 and true, are different values in a config.
    return type(a) is type(b) and a == b


def diff_values(old: Any, new: Any, origin_old, origin_new, path: Path = ()) -> list[Difference]:
    """Differences between two plain values; ``origin_*(path)`` names where a value came from."""
    if isinstance(old, dict) and isinstance(new, dict):
        found: list[Difference] = []
        for key in list(old) + [k for k in new if k not in old]:
            here = path + (key,)
            if key not in new:
                found.append(Difference(here, old[key], MISSING, origin_old(here), ""))
            elif key not in old:
                found.append(Difference(here, MISSING, new[key], "", origin_new(here)))
            else:
                found += diff_values(old[key], new[key], origin_old, origin_new, here)
        return found
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        found = []
        for index, (a, b) in enumerate(zip(old, new)):
            found += diff_values(a, b, origin_old, origin_new, path + (index,))
        return found
    if _same(old, new):
        return []
    return [Difference(path, old, new, origin_old(path), origin_new(path))]


def origin_function(document):
    """path -> "file:line", "<--set>", "${expr} <- file:line", or "" when the document has no positions."""
    from modalities.config.provenance import _where

    def origin(path: Path) -> str:
        interpolations = getattr(document, "provenance", {}).get(path)
        if interpolations:
            return ", ".join(
                f"${{{expression}}}" + ("" if target is None else f" <- {_where(document.source_map.value(target))}")
                for expression, target in interpolations
            )
        span = document.source_map.keys.get(path) or document.source_map.value(path)  # a subtree: its key's line
        if span is None:
            return "?"
        return OVERRIDE_FILE if span.file == OVERRIDE_FILE else f"{span.file}:{span.line}"

    return origin
