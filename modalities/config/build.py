"""Stage 5: build every component once, dependencies first; a reference receives the one shared object."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from modalities.config.diagnostics import Diagnostic
from modalities.config.resolve import is_component_node, is_reference_node
from modalities.config.spans import Path, dotted, get_at
from modalities.config.validate import ValidatedGraph
from modalities.registry.types import BUILD_PHASE, ComponentPlaceholder


class BuildError(Exception):
    """A builder raised: names the component and where it is defined; the original exception is chained."""

    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic
        where = f"{diagnostic.span}: " if diagnostic.span else ""
        super().__init__(f"{where}{diagnostic.message}")


def build_components(validated: ValidatedGraph) -> dict[str, Any]:
    """Every top-level entry by name, in file order: components built once each, dependencies first (a
    reference, at any place, receives the one shared object), containers holding components filled with the
    built objects, plain values as they are (``settings`` included, with its number conversions computed).
    A config that is invalid once its computed values are in, a builder that cannot be imported or that raises:
    BuildError naming the component and where it is defined, the original exception chained."""
    graph = validated.graph
    built: dict[Path, Any] = {}
    for path in graph.build_order():
        built[path] = _build_node(validated, path, built)
    return {name: _substitute_document(value, (name,), graph, built) for name, value in graph.document.values.items()}


def _build_node(validated: ValidatedGraph, path: Path, built: dict[Path, Any]) -> Any:
    item = validated.nodes[path]
    spec = item.spec
    config_path = path + ("config",)
    values = _fill_placeholders(item.raw_config, built)
    try:
        config = spec.config_class().model_validate(values, context={"phase": BUILD_PHASE})
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or '<config>'}: {error['msg']}" for error in e.errors(include_url=False)
        )
        raise _error(validated, config_path, f"config of '{dotted(path)}' ({spec.name}) is invalid once built: {problems}") from e
    except Exception as e:
        raise _error(validated, config_path, f"config of '{dotted(path)}' ({spec.name}) is invalid once built: {e}") from e
    kwargs = {name: getattr(config, name) for name in type(config).model_fields}
    try:
        builder = spec.builder_callable()
    except Exception as e:
        raise _error(validated, path, f"cannot import the builder of {spec.name} ({spec.builder_location}): {e}") from e
    try:
        return builder(**kwargs)
    except Exception as e:
        message = f"building '{dotted(path)}' ({spec.name}) failed: {type(e).__name__}: {e}"
        raise _error(validated, path, message) from e


def _error(validated: ValidatedGraph, path: Path, message: str) -> BuildError:
    source_map = validated.graph.document.source_map
    return BuildError(Diagnostic(message, span=source_map.key(path) or source_map.value(path), path=path, code="build"))


def _fill_placeholders(value: Any, built: dict[Path, Any]) -> Any:
    if isinstance(value, ComponentPlaceholder):
        return built[value.node_id]
    if isinstance(value, dict):
        return {k: _fill_placeholders(v, built) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_placeholders(v, built) for v in value]
    return value


def _substitute_document(value: Any, path: Path, graph: Any, built: dict[Path, Any]) -> Any:
    if path in built:
        return built[path]
    if is_reference_node(value):
        target = graph.references[path].target
        if target in built:
            return built[target]
        return _substitute_document(get_at(graph.document.values, target), target, graph, built)
    if is_component_node(value):
        return built[path]
    if isinstance(value, dict):
        return {k: _substitute_document(v, path + (k,), graph, built) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_document(v, path + (i,), graph, built) for i, v in enumerate(value)]
    return value
