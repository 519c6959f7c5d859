"""Stage 2: resolve ``${a.b.c}`` paths and ``${resolver:arg}`` calls against the Document.

A whole-string interpolation keeps the value's type; inside a longer string it becomes text. An
interpolation that lands on a component node becomes a reference to it (one shared object), never a copy.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any, Callable

from modalities.config.diagnostics import Diagnostic, did_you_mean
from modalities.config.load import Document
from modalities.config.spans import Path, dotted

INTERPOLATION = re.compile(r"(?<!\\)\$\{([^${}]*)\}")
REFERENCE_PASS_TYPE = "BY_REFERENCE"


@dataclass
class ResolverContext:
    config_path: FilePath | None
    experiments_root: FilePath | None
    experiment_id: str | None


Resolver = Callable[[str, ResolverContext], Any]
_RESOLVERS: dict[str, Resolver] = {}


class ResolverError(Exception):
    """Raised by a resolver for a bad argument; the message becomes a diagnostic at the interpolation."""


def register_resolver(name: str, resolver: Resolver, *, replace: bool = False) -> None:
    """Make ``${name:arg}`` call ``resolver(arg, context)``."""
    if name in _RESOLVERS and not replace:
        raise ValueError(f"resolver '{name}' is already registered; pass replace=True to replace it")
    _RESOLVERS[name] = resolver


def registered_resolvers() -> dict[str, Resolver]:
    return dict(_RESOLVERS)


def _cuda_env(arg: str, ctx: ResolverContext) -> int:
    defaults = {"LOCAL_RANK": 0, "RANK": 0, "WORLD_SIZE": 1}
    if arg not in defaults:
        raise ResolverError(f"cuda_env knows {', '.join(defaults)}, not '{arg}'")
    return int(os.environ.get(arg, defaults[arg]))


def _modalities_env(arg: str, ctx: ResolverContext) -> Any:
    if arg == "config_file_path":
        return str(ctx.config_path) if ctx.config_path else None
    if arg == "config_folder_path":
        return str(ctx.config_path.parent) if ctx.config_path else None
    if arg == "experiments_root_path":
        return str(ctx.experiments_root) if ctx.experiments_root else None
    if arg == "experiment_id":
        return ctx.experiment_id
    raise ResolverError(
        "modalities_env knows config_file_path, config_folder_path, experiments_root_path, experiment_id, "
        f"not '{arg}'"
    )


def _node_env(arg: str, ctx: ResolverContext) -> int:
    if arg != "num_cpus":
        raise ResolverError(f"node_env knows num_cpus, not '{arg}'")
    return os.cpu_count() or 1


def _env(arg: str, ctx: ResolverContext) -> Any:
    name, sep, default = arg.partition(",")
    name = name.strip()
    if name in os.environ:
        return os.environ[name]
    if sep:
        from modalities.config.overrides import parse_override_value

        return parse_override_value(default.strip())
    raise ResolverError(f"environment variable '{name}' is not set and no default is given (${{env:{name},DEFAULT}})")


for _name, _fn in (("cuda_env", _cuda_env), ("modalities_env", _modalities_env), ("node_env", _node_env), ("env", _env)):
    register_resolver(_name, _fn)


def is_component_node(value: Any) -> bool:
    return isinstance(value, dict) and "component_key" in value


def is_reference_node(value: Any) -> bool:
    return isinstance(value, dict) and "instance_key" in value and "component_key" not in value


def reference_to(path: Path) -> dict:
    return {"instance_key": dotted(path), "pass_type": REFERENCE_PASS_TYPE}


_UNRESOLVED = object()


class _Resolver:
    def __init__(self, document: Document, context: ResolverContext):
        self.document = document
        self.context = context
        self.diagnostics: list[Diagnostic] = []
        self.unresolved_paths: set[Path] = set()
        self._done: dict[Path, Any] = {}
        self._stack: list[Path] = []

    def run(self) -> Any:
        return self.resolve_path(())

    def resolve_path(self, path: Path) -> Any:
        if path in self._done:
            return self._done[path]
        if path in self._stack:
            return self._cycle(path)
        self._stack.append(path)
        try:
            value = self._lookup_raw(path)
            if isinstance(value, dict):
                result: Any = {k: self.resolve_path(path + (k,)) for k in value}
            elif isinstance(value, list):
                result = [self.resolve_path(path + (i,)) for i in range(len(value))]
            elif isinstance(value, str) and "${" in value:
                result = self._interpolate(value, path)
            else:
                result = value.replace("\\${", "${") if isinstance(value, str) else value
        finally:
            self._stack.pop()
        self._done[path] = result
        return result

    def _lookup_raw(self, path: Path) -> Any:
        node = self.document.values
        for part in path:
            node = node[part]
        return node

    def _cycle(self, path: Path) -> Any:
        chain = self._stack[self._stack.index(path) :] + [path]
        links = [f"{dotted(p) or '<root>'} ({self.document.source_map.value(p)})" for p in chain]
        self.diagnostics.append(
            Diagnostic(
                "interpolation cycle: " + " -> ".join(links),
                span=self.document.source_map.value(chain[0]),
                path=chain[0],
                hint="one of these values must be given directly instead of through ${...}",
                code="interpolation-cycle",
            )
        )
        self.unresolved_paths.add(path)
        return _UNRESOLVED

    def _interpolate(self, text: str, path: Path) -> Any:
        matches = list(INTERPOLATION.finditer(text))
        if not matches:
            return text.replace("\\${", "${")
        if len(matches) == 1 and matches[0].span() == (0, len(text)):
            value = self._evaluate(matches[0].group(1).strip(), path)
            if value is _UNRESOLVED:
                self.unresolved_paths.add(path)
            return text if value is _UNRESOLVED else value
        pieces, last = [], 0
        for match in matches:
            value = self._evaluate(match.group(1).strip(), path)
            if value is _UNRESOLVED:
                self.unresolved_paths.add(path)
                return text
            if is_reference_node(value) or isinstance(value, (dict, list)):
                self._error(
                    path,
                    f"'${{{match.group(1)}}}' is a {'component' if is_reference_node(value) else 'mapping or list'} "
                    "and cannot be part of a longer string",
                    hint="interpolate it as the whole value, or point at a scalar",
                )
                self.unresolved_paths.add(path)
                return text
            pieces.append(text[last : match.start()])
            pieces.append("" if value is None else str(value))
            last = match.end()
        pieces.append(text[last:])
        return "".join(pieces).replace("\\${", "${")

    def _evaluate(self, expression: str, at: Path) -> Any:
        name, sep, arg = expression.partition(":")
        if sep and name.strip() in _RESOLVERS:
            try:
                return _RESOLVERS[name.strip()](arg.strip(), self.context)
            except ResolverError as e:
                self._error(at, f"${{{expression}}}: {e}")
                return _UNRESOLVED
            except Exception as e:  # a user resolver's bug, shown at the interpolation that called it
                self._error(at, f"${{{expression}}}: resolver '{name}' raised {type(e).__name__}: {e}")
                return _UNRESOLVED
        if sep:
            self._error(
                at,
                f"unknown resolver '{name}' in ${{{expression}}}",
                hint=did_you_mean(name, _RESOLVERS) or f"known resolvers: {', '.join(sorted(_RESOLVERS))}",
            )
            return _UNRESOLVED
        return self._evaluate_path(expression, at)

    def _evaluate_path(self, expression: str, at: Path) -> Any:
        target: list = []
        node = self.document.values
        for part in expression.split("."):
            if isinstance(node, str) and "${" in node:  # the path runs through another interpolation
                node = self.resolve_path(tuple(target))
            if isinstance(node, dict) and part in node:
                key: Any = part
            elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
                key = int(part) % len(node)
            else:
                where = dotted(target) or "the top level"
                hint = did_you_mean(part, node) if isinstance(node, dict) else None
                self._error(at, f"${{{expression}}}: '{part}' does not exist in {where}", hint=hint)
                return _UNRESOLVED
            target.append(key)
            node = node[key]
        target_path = tuple(target)
        if is_component_node(node):
            return reference_to(target_path)
        value = self.resolve_path(target_path)
        if value is _UNRESOLVED or target_path in self.unresolved_paths:
            return _UNRESOLVED
        if isinstance(value, (dict, list)):
            self.document.source_map.copy_subtree(target_path, at)
            return _share_components(value, target_path)
        return value

    def _error(self, path: Path, message: str, hint: str | None = None) -> None:
        self.diagnostics.append(
            Diagnostic(message, span=self.document.source_map.value(path), path=path, hint=hint, code="interpolation")
        )


def _share_components(value: Any, path: Path) -> Any:
    """A copy of a resolved subtree in which every component node becomes a reference to the original."""
    if is_component_node(value):
        return reference_to(path)
    if isinstance(value, dict):
        return {k: _share_components(v, path + (k,)) for k, v in value.items()}
    if isinstance(value, list):
        return [_share_components(v, path + (i,)) for i, v in enumerate(value)]
    return value


@dataclass
class ResolvedDocument(Document):
    unresolved_paths: frozenset = frozenset()


def resolve_document(document: Document, context: ResolverContext) -> tuple[ResolvedDocument, list[Diagnostic]]:
    """Resolve every interpolation. Values that cannot be resolved are left as written and listed in
    ``unresolved_paths``, so later stages can go on reporting other errors without piling up on these."""
    resolver = _Resolver(document, context)
    values = resolver.run()
    resolved = ResolvedDocument(
        values=values,
        source_map=document.source_map,
        config_path=document.config_path,
        unresolved_paths=frozenset(resolver.unresolved_paths),
    )
    return resolved, resolver.diagnostics
