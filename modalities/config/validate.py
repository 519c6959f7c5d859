"""Stage 4: every component node checked against its registered config class, all errors in one pass.

Nothing is built here. Each nested component and each reference is replaced by a placeholder that knows the
kind its target produces, so a field typed ``ComponentRef["optimizer"]`` can reject a dataset before any
model exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from modalities.config.diagnostics import (
    MESSAGE_CHARS,
    NOTE,
    WARNING,
    Diagnostic,
    cut,
    did_you_mean,
    has_errors,
    printable,
)
from modalities.config.graph import ComponentGraph, ComponentNode
from modalities.config.resolve import is_component_node, is_reference_node
from modalities.config.spans import Path, dotted, get_at
from modalities.registry import Registry
from modalities.registry.python_types import validation_twin
from modalities.registry.registry import ComponentSpec, RootSpec
from modalities.registry.types import VALIDATE_PHASE, ComponentPlaceholder, NodeInfo, collecting_config_warnings

# Kinds whose components deliver a plain value (a number, a function) rather than an object of their own kind.
VALUE_KINDS = frozenset({"int", "float", "str", "bool", "callable", "path", "list", "dict"})
_UNKNOWN_KIND = "<unknown>"
_REFERENCE_ERRORS = {"component_kind", "component_expected"}


@dataclass
class ValidatedNode:
    node: ComponentNode
    spec: ComponentSpec
    config: BaseModel | None  # None when some fields wait for values that other components compute when built
    raw_config: dict  # the config with placeholders where components stand, as validated
    # When config is None: the config with the waiting values left as placeholders (unvalidated), for checks
    # that read the other fields.
    partial: BaseModel | None = None


@dataclass
class ValidatedGraph:
    graph: ComponentGraph
    registry: Registry
    nodes: dict[Path, ValidatedNode] = field(default_factory=dict)


def validate_graph(graph: ComponentGraph, registry: Registry) -> tuple[ValidatedGraph, list[Diagnostic]]:
    """Each component node against its registered config class (no config: ``{}``), with placeholders where
    components stand. ``nodes`` holds the nodes without errors (in graph order); a node whose only errors are
    values other components compute when built (a number_conversion) is held with ``config`` None and its
    ``partial`` config. Reported, each at its place: a component_key that is not a string or not registered, an
    unknown variant ("did you mean", the variants), a config that is not a mapping, a config class that
    cannot be imported, a missing optional package, unknown fields (also for classes that ignore them; a misspelt
    required field once, as the unknown key), missing fields, wrong values (with the value, or the kind a
    component produces), and the validators' warnings and notes. Not reported again: errors inside values that
    could not be resolved, and errors about references the graph already reported."""
    validator = _Validator(graph, registry)
    for node in graph.nodes.values():
        validator.validate_node(node)
    return validator.result, validator.diagnostics


def placeholder_for(graph: ComponentGraph, registry: Registry, path: Path) -> ComponentPlaceholder:
    """What stands for the component at ``path`` while validating: the kind it produces ("<unknown>" for a
    node of no registered variant, or no node) and a label "'path' (component_key/variant_key, file:line:col)"."""
    node = graph.nodes.get(path)
    spec = _lookup(registry, node) if node else None
    kind = spec.kind_for(node.config) if spec else _UNKNOWN_KIND
    label = f"'{dotted(path)}'"
    if node is not None:
        label += f" ({node.component_key}/{node.variant_key}"
        if node.span:
            label += f", {node.span}"
        label += ")"
    # The label goes into messages (through pydantic, which refuses lone surrogates): printable and short.
    return ComponentPlaceholder(path, kind, cut(printable(label), MESSAGE_CHARS // 2))


def _lookup(registry: Registry, node: ComponentNode) -> ComponentSpec | None:
    if isinstance(node.component_key, str) and isinstance(node.variant_key, str):
        return registry.get(node.component_key, node.variant_key)
    return None


class _Validator:
    def __init__(self, graph: ComponentGraph, registry: Registry):
        self.graph = graph
        self.registry = registry
        self.source_map = graph.document.source_map
        self.unresolved = graph.document.unresolved_paths
        self.result = ValidatedGraph(graph=graph, registry=registry)
        self.diagnostics: list[Diagnostic] = []

    def error(self, path: Path, message: str, hint: str | None = None, code: str = "", key: bool = False) -> None:
        span = self.source_map.key(path) if key else self.source_map.value(path)
        self.diagnostics.append(Diagnostic(message, span=span, path=path, hint=hint, code=code))

    def validate_node(self, node: ComponentNode) -> None:
        spec = self.find_spec(node)
        if spec is None:
            return
        for module, extra in spec.missing_packages():
            self.error(
                node.path + ("variant_key",),
                f"{spec.name} needs the Python package '{module}', which is not installed here",
                hint=f"pip install 'modalities[{extra}]' (or choose another variant)",
                code="missing-package",
            )
        config_path = node.path + ("config",)
        raw = node.config if node.config is not None else {}
        if not isinstance(raw, dict):
            self.error(config_path, f"config of {spec.name} must be a mapping of fields, got {type(raw).__name__}")
            return
        try:
            config_class = spec.config_class()
        except Exception as e:
            self.error(node.path, f"cannot load the config class of {spec.name}: {type(e).__name__}: {e}")
            return
        prepared = self.with_placeholders(raw, config_path)
        unknown = self.check_unknown_fields(config_class, prepared, config_path)
        # A class that types dependencies by Python classes (nn.Module, Optimizer, ...) is checked by kind here
        # and with isinstance when built (see registry/python_types.py).
        validating_class = validation_twin(config_class)
        try:
            with collecting_config_warnings() as warnings:
                validated = validating_class.model_validate(prepared, context={"phase": VALIDATE_PHASE})
        except ValidationError as e:
            reported = self.report(e, prepared, config_path, config_class, skip_extra=unknown)
            if not reported and not unknown:  # only deferred values: checked again at build time
                partial = lenient_construct(validating_class, prepared)
                self.result.nodes[node.path] = ValidatedNode(node, spec, None, prepared, partial)
            return
        except Exception as e:  # a validator in the config class that raises something else
            if validating_class is not config_class:
                # its validators may need the built objects: they run again when the component is built
                self.result.nodes[node.path] = ValidatedNode(node, spec, None, prepared)
                return
            self.error(config_path, f"{spec.name}: {type(e).__name__}: {e}")
            return
        for field_name, message, severity in warnings:
            path = config_path + ((field_name,) if field_name else ())
            span = self.source_map.value(path) if field_name else self.source_map.key(node.path)
            severity = NOTE if severity == NOTE else WARNING
            self.diagnostics.append(Diagnostic(f"{spec.name}: {message}", span=span, path=path, severity=severity))
        if not unknown:
            self.result.nodes[node.path] = ValidatedNode(node, spec, validated, prepared)

    def find_spec(self, node: ComponentNode) -> ComponentSpec | None:
        key, variant = node.component_key, node.variant_key
        if not isinstance(key, str):
            self.error(node.path + ("component_key",), f"component_key must be a string, got {key!r}")
            return None
        variants = self.registry.variants(key)
        if not variants:
            self.error(
                node.path + ("component_key",),
                f"unknown component_key '{key}'",
                hint=did_you_mean(key, self.registry.component_keys())
                or "run `modalities components` to list them, or register yours (--plugin)",
                code="unknown-component",
            )
            return None
        if not isinstance(variant, str):
            return None  # the graph stage reported it
        spec = self.registry.get(key, variant)
        if spec is None:
            close = did_you_mean(variant, variants)
            listing = "variants of " + key + ": " + ", ".join(variants)
            self.error(
                node.path + ("variant_key",),
                f"unknown variant_key '{variant}' for component_key '{key}'",
                hint=f"{close} ({listing})" if close else listing,
                code="unknown-variant",
            )
        return spec

    def with_placeholders(self, value: Any, path: Path, _containers: frozenset = frozenset()) -> Any:
        if is_component_node(value):
            return placeholder_for(self.graph, self.registry, path)
        if is_reference_node(value):
            ref = self.graph.references.get(path)
            if ref is None or ref.target is None or ref.target in _containers:
                label = cut(printable(f"unresolved reference at '{dotted(path)}'"), MESSAGE_CHARS // 2)
                return ComponentPlaceholder(path, _UNKNOWN_KIND, label)
            if ref.target in self.graph.nodes:
                return placeholder_for(self.graph, self.registry, ref.target)
            container = get_at(self.graph.document.values, ref.target)  # e.g. a list of data loaders
            return self.with_placeholders(container, ref.target, _containers | {ref.target})
        if isinstance(value, dict):
            return {k: self.with_placeholders(v, path + (k,), _containers) for k, v in value.items()}
        if isinstance(value, list):
            return [self.with_placeholders(v, path + (i,), _containers) for i, v in enumerate(value)]
        return value

    def check_unknown_fields(self, config_class: type[BaseModel], data: dict, path: Path) -> bool:
        """Unknown fields are errors even for user config classes that do not forbid them themselves."""
        extra = config_class.model_config.get("extra")
        if extra in ("forbid", "allow"):
            return False
        known = _field_names(config_class)
        found = False
        for key in data:
            if key not in known:
                found = True
                self.unknown_field(key, path, config_class)
        return found

    def unknown_field(self, key: Any, path: Path, config_class: type[BaseModel]) -> None:
        fields = sorted(_field_names(config_class))
        self.error(
            path + (key,),
            f"unknown field '{key}' for {config_class.__name__}",
            hint=did_you_mean(key, fields) or ("fields: " + ", ".join(fields) if fields else "it takes no fields"),
            code="unknown-field",
            key=True,
        )

    def report(
        self, error: ValidationError, data: Any, config_path: Path, cls: type[BaseModel], skip_extra: bool
    ) -> int:
        """Add the errors as diagnostics; returns how many were reported (deferred ones are not)."""
        before = len(self.diagnostics)
        for item in _one_error_per_location(error.errors(include_url=False), data):
            loc = _data_location(data, item["loc"])
            path = config_path + loc
            kind, value = item["type"], item.get("input")
            if self.suppressed(path, kind, value):
                continue
            if kind == "extra_forbidden":
                if not skip_extra:
                    owner = model_at(cls, loc[:-1])
                    self.unknown_field(loc[-1] if loc else "?", path[:-1], owner or cls)
                continue
            if kind == "missing":
                name = item["loc"][-1]
                owner = model_at(cls, loc[:-1]) or cls
                if _explained_by_typo(data, loc[:-1], name, owner):
                    continue  # the unknown-field error beside it already says "did you mean"
                hint = _field_hint(owner, name)
                near = _misspellings(data, loc[:-1], name, owner)
                if near:
                    looks = f"the key {printable(repr(near[0]))} here looks like a misspelt '{name}'"
                    hint = f"{hint} ({looks})" if hint else looks
                self.error(path[:-1] if loc else path, f"missing required field '{name}'", code="missing-field",
                           hint=hint, key=True)
                continue
            message = item["msg"]
            if isinstance(value, ComponentPlaceholder) and kind not in _REFERENCE_ERRORS:
                message = f"{message}, but got component {value.label} which produces '{value.kind}'"
            elif kind not in _REFERENCE_ERRORS and not isinstance(value, (dict, list)):
                message = f"{message} (got {value!r})"
            self.error(path, message, code=kind, hint=(item.get("ctx") or {}).get("hint"))
        return len(self.diagnostics) - before + (1 if skip_extra else 0)

    def suppressed(self, path: Path, kind: str, value: Any) -> bool:
        if any(path[: len(p)] == p for p in self.unresolved):
            return True  # already reported as an interpolation error
        if isinstance(value, ComponentPlaceholder):
            if value.kind == _UNKNOWN_KIND:
                return True  # its own node already has an error
            if kind not in _REFERENCE_ERRORS and kind != "extra_forbidden" and value.kind in VALUE_KINDS:
                return True  # a number_conversion and the like: its value is checked when it is built
        return False


def _one_error_per_location(items: list[dict], data: Any) -> list[dict]:
    """A union field reports one error per alternative at the same place; keep the most telling one."""
    chosen: dict[tuple, dict] = {}
    for item in items:
        key = (_data_location(data, item["loc"]), item["type"] == "missing")
        best = chosen.get(key)
        if best is None or (item["type"] in _REFERENCE_ERRORS and best["type"] not in _REFERENCE_ERRORS):
            chosen[key] = item
    return list(chosen.values())


def _field_names(config_class: type[BaseModel]) -> set[str]:
    names: set[str] = set()
    for name, info in config_class.model_fields.items():
        names.add(name)
        if info.alias:
            names.add(info.alias)
        choices = getattr(info.validation_alias, "choices", None)
        if choices:
            names.update(c for c in choices if isinstance(c, str))
        elif isinstance(info.validation_alias, str):
            names.add(info.validation_alias)
    return names


def _data_location(data: Any, loc: tuple) -> tuple:
    """The part of a pydantic error location that exists in the data (unions add type names to it)."""
    found: list = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            found.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            found.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part == loc[-1]:
            found.append(part)  # a missing or unknown key at this level
            break
        else:
            continue
    return tuple(found)


def model_at(cls: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The nested config class at ``loc`` (list indices skipped), if it can be followed: for hints on unknown or
    missing fields, and the fields an editor offers there."""
    import typing

    current: Any = cls
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return None
        annotation = current.model_fields[part].annotation
        candidates = [annotation, *typing.get_args(annotation)]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if current is None:
            for arg in typing.get_args(annotation):
                inner = [a for a in typing.get_args(arg) if isinstance(a, type) and issubclass(a, BaseModel)]
                if inner:
                    current = inner[0]
                    break
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _misspellings(data: Any, loc: tuple, name: Any, cls: type[BaseModel]) -> list[str]:
    """The unknown keys beside a missing field ``name`` that look like misspellings of it."""
    node = data
    for part in loc:
        node = node[part] if isinstance(node, (dict, list)) else None
    if not isinstance(node, dict) or not isinstance(name, str):
        return []
    known = _field_names(cls)
    return [k for k in node if isinstance(k, str) and k not in known and did_you_mean(k, [name])]


def _explained_by_typo(data: Any, loc: tuple, name: Any, cls: type[BaseModel]) -> bool:
    """Whether a missing field ``name`` stands beside an unknown key that is a misspelling of it, which is
    reported as unknown with "did you mean" (not where the class allows unknown keys, as `settings` does:
    nothing else would report it)."""
    return cls.model_config.get("extra") != "allow" and bool(_misspellings(data, loc, name, cls))


def _field_hint(cls: type[BaseModel], name: Any) -> str | None:
    info = cls.model_fields.get(name) if isinstance(name, str) else None
    if info is None:
        return None
    described = f": {info.description}" if info.description else ""
    return f"add '{name}' under this config{described}"


def lenient_construct(cls: type[BaseModel], data: Any) -> BaseModel | None:
    """``cls`` from ``data`` where some values wait for the build (placeholders of computed numbers): nested
    models are validated where they can be and constructed around the waiting values where not. For checks that
    read the other fields; never built from."""
    if not isinstance(data, dict):
        return None
    values: dict[str, Any] = {}
    for name, info in cls.model_fields.items():
        key = name if name in data else (info.alias if info.alias in data else None)
        if key is None:
            continue
        value = data[key]
        nested = _nested_model(info.annotation)
        if nested is not None and isinstance(value, dict):
            try:
                value = nested.model_validate(value, context={"phase": VALIDATE_PHASE})
            except ValidationError:
                value = lenient_construct(nested, value)
            except Exception:  # noqa: BLE001 - a validator that needs built values
                value = lenient_construct(nested, value)
        values[name] = value
    try:
        return cls.model_construct(**values)
    except Exception:  # noqa: BLE001 - a class whose defaults cannot be made without validation
        return None


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    import typing

    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


# ---- the root: what a whole config of a kind (a training run) must be ---------------------------------------


@dataclass
class ValidatedRoot:
    spec: RootSpec
    config: BaseModel | None  # None when the top level has errors (they are reported)


class RunView:
    """What a root's contract check sees (registry/types.py Finding and NodeInfo): the validated root and the
    validated configs of the components it names, read-only."""

    def __init__(self, run: BaseModel | None, graph: ComponentGraph, validated: ValidatedGraph,
                 resume_from: Any = None):
        self.run = run
        self._graph = graph
        self._validated = validated
        self.resume_from = resume_from  # the checkpoint a run continues from (`--resume`), or "auto"

    def node(self, ref: Any) -> NodeInfo | None:
        path = ref.node_id if isinstance(ref, ComponentPlaceholder) else ref
        node = self._graph.nodes.get(path) if isinstance(path, tuple) else None
        if node is None or not isinstance(node.component_key, str) or not isinstance(node.variant_key, str):
            return None
        validated = self._validated.nodes.get(path)
        config = validated.config or validated.partial if validated is not None else None
        return NodeInfo(path, node.component_key, node.variant_key, config)

    def nodes(self) -> list[NodeInfo]:
        return [info for info in (self.node(path) for path in self._graph.nodes) if info is not None]

    def where(self, path: tuple) -> str:
        span = self._graph.document.source_map.value(path)
        return f"{dotted(path)} at {span}" if span else dotted(path)

    def value(self, path: tuple) -> Any:
        return get_at(self._graph.document.values, path)


def validate_root(
    graph: ComponentGraph, validated: ValidatedGraph, registry: Registry, spec: RootSpec, run_contract: bool = True,
    resume_from: Any = None,
) -> tuple[ValidatedRoot, list[Diagnostic]]:
    """The config's top level against the root's class, then (``run_contract``: when the components themselves
    have no errors, which would only make the cross-checks repeat them) the root's contract across them
    (``resume_from``: the checkpoint the run continues from, which the contract checks against)."""
    validator = _Validator(graph, registry)
    values = graph.document.values if isinstance(graph.document.values, dict) else {}
    prepared = validator.with_placeholders(values, ())
    try:
        cls = spec.config_class()
    except Exception as e:  # noqa: BLE001
        return ValidatedRoot(spec, None), [Diagnostic(f"cannot load the {spec.name} root class: {e}")]
    run = None
    try:
        run = cls.model_validate(prepared, context={"phase": VALIDATE_PHASE})
    except ValidationError as e:
        if not validator.report(e, prepared, (), cls, skip_extra=False):
            run = lenient_construct(cls, prepared)  # only values computed when built: check the rest
    first_line = _first_line(graph)
    diagnostics = []
    for d in validator.diagnostics:
        if d.code == "missing-field" and d.path == ():  # a required top-level key: say so at the top of the file
            d.span = first_line
            name = d.message.replace("missing required field ", "")
            d.message = f"a {spec.name} run needs the top-level key {name}"
            info = cls.model_fields.get(name.strip("'"))
            d.hint = f"add {name} at the top level" + (f": {info.description}" if info and info.description else "")
        elif d.span is None:
            d.span = first_line
        diagnostics.append(d)
    contract = spec.contract_callable()
    if run is not None and contract is not None and run_contract and not has_errors(diagnostics):
        try:
            findings = contract(RunView(run, graph, validated, resume_from))
        except Exception as e:  # noqa: BLE001 - a bug in a check must not hide the config's own errors
            findings = []
            diagnostics.append(
                Diagnostic(
                    f"the {spec.name} run's checks failed ({type(e).__name__}: {e}); the components were checked "
                    "one by one, but not against each other",
                    span=first_line,
                    severity=WARNING,
                    code="contract-failed",
                )
            )
        unique = {(tuple(f.path), f.message): f for f in findings}  # a dataset shared by two loaders: once
        for finding in unique.values():
            diagnostics.append(
                Diagnostic(
                    finding.message,
                    span=graph.document.source_map.value(finding.path) or first_line,
                    path=finding.path,
                    severity=WARNING if finding.severity == WARNING else "error",
                    hint=finding.hint,
                    code="run-contract",
                )
            )
    return ValidatedRoot(spec, run if not has_errors(diagnostics) else None), diagnostics


def _first_line(graph: ComponentGraph):
    from modalities.config.spans import Span

    root = graph.document.source_map.values.get(())
    if root is not None:
        return Span(root.file, 1, 1, 1, 2)
    config_path = graph.document.config_path
    return Span(str(config_path), 1, 1, 1, 2) if config_path else None
