"""Completion, hover, go to definition, find references and rename, as functions of an analysis.

Each reads what the compile produced (the registry, the config classes, the source map, the graph's references
and the provenance of each ``${...}``); none checks anything. Positions in and out are LSP positions
(0-based, UTF-16 columns); ``text.py`` converts.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pydantic import BaseModel

from modalities.config.resolve import INTERPOLATION, absolute_parts, is_component_node, resolver_names
from modalities.config.spans import Path as ConfigPath
from modalities.config.spans import Span, dotted, get_at, path_part
from modalities.config.validate import model_at
from modalities.lsp.analysis import Analysis, Located, locate, span_file
from modalities.lsp.text import (
    CursorContext,
    character_column,
    cursor_context,
    mapping_scalars,
    position,
    span_range,
    top_level_keys,
)
from modalities.registry import Registry, default_registry
from modalities.registry.python_types import validation_twin
from modalities.registry.registry import ComponentSpec
from modalities.registry.types import component_kinds_of

COMPONENT_NODE_KEYS = ("component_key", "variant_key", "config")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def _registry(analysis: Analysis | None) -> Registry:
    return analysis.compiled.registry if analysis and analysis.compiled else default_registry()


# ---- what a field accepts, and the config class that governs a mapping -----------------------------------


def _kinds_in(annotation: Any, metadata: list | tuple = ()) -> tuple[str, ...] | None:
    kinds = component_kinds_of(list(metadata)) or component_kinds_of(list(getattr(annotation, "__metadata__", ())))
    if kinds:
        return kinds
    for arg in typing.get_args(annotation):
        kinds = _kinds_in(arg)
        if kinds:
            return kinds
    return None


def accepted_kinds(model: type[BaseModel] | None, rel: tuple) -> tuple[str, ...] | None:
    """The kinds of component the field at ``rel`` (inside ``model``) accepts; ("int",) for an int field."""
    names = [i for i, part in enumerate(rel) if isinstance(part, str)]
    if model is None or not names:
        return None
    owner = model_at(model, rel[: names[-1]]) if names[-1] else model
    info = validation_twin(owner).model_fields.get(rel[names[-1]]) if owner is not None else None
    if info is None:
        return None
    kinds = _kinds_in(info.annotation, info.metadata)
    if kinds is None and (info.annotation is int or int in typing.get_args(info.annotation)):
        return ("int",)
    return kinds


@dataclass
class Governing:
    """The config class a mapping of the text belongs to: a component's config class (``spec``), or the run's
    root class, with the path inside it."""

    model: type[BaseModel] | None
    rel: tuple
    spec: ComponentSpec | None = None
    owner: tuple = ()


def governing(context: CursorContext, lines: list[str], registry: Registry, top_level: Any) -> Governing:
    """Which class governs the mapping at ``context.path``: the nearest enclosing component's config class
    (read from the text, which may not parse yet), else the root's (a training run's) class."""
    for index in range(len(context.frames) - 1, -1, -1):
        frame = context.frames[index]
        if frame.key != "config":
            continue
        siblings = mapping_scalars(lines, frame.line)
        spec = registry.get(siblings.get("component_key", ""), siblings.get("variant_key", ""))
        if spec is not None:
            try:
                return Governing(spec.config_class(), context.path[index + 1 :], spec, context.path[:index])
            except Exception:  # noqa: BLE001 - a config class that cannot be imported: nothing to offer
                return Governing(None, (), spec, context.path[:index])
    keys = top_level if isinstance(top_level, dict) else top_level_keys(lines)  # the text, when it does not parse
    root = registry.root_for(keys)
    try:
        return Governing(root.config_class() if root else None, context.path)
    except Exception:  # noqa: BLE001
        return Governing(None, context.path)


@cache
def _rows(model: type[BaseModel]) -> dict[str, tuple]:
    """name -> (other names, type, default, description), as the docs and `modalities components` show them."""
    from modalities.schema.docs import field_rows

    return {name: (others, type_text, default, description)
            for name, others, type_text, default, description in field_rows(model)}


def field_markdown(model: type[BaseModel], name: str) -> str | None:
    row = _rows(model).get(name)
    if row is None:
        return None
    others, type_text, default, description = row
    given = default if default in ("required", "computed") else f"default `{default}`"
    also = f" (also {', '.join(others)})" if others else ""
    return f"**{name}**{also}: {type_text.replace('`', '')}, {given}\n\n{description}".rstrip()


_COMPONENT_DOCS: dict[int, tuple[ComponentSpec, str]] = {}


def component_markdown(spec: ComponentSpec) -> str:
    """The component's section of the reference (what `modalities components KEY/VARIANT` shows), made once."""
    from modalities.schema.docs import variant_markdown

    known = _COMPONENT_DOCS.get(id(spec))
    if known is not None and known[0] is spec:
        return known[1]
    try:
        text = variant_markdown(spec)
    except Exception as e:  # noqa: BLE001 - a class whose schema cannot be made: say what it is at least
        text = f"### {spec.component_key} / {spec.variant_key}\n\n{spec.description}\n\n({type(e).__name__}: {e})"
    _COMPONENT_DOCS[id(spec)] = (spec, text)
    return text


# ---- completion ----------------------------------------------------------------------------------------


def _item(label: str, kind: lsp.CompletionItemKind, edit_range: lsp.Range, *, detail: str | None = None,
          doc: str | None = None, sort: str = "1", insert: str | None = None) -> lsp.CompletionItem:
    return lsp.CompletionItem(
        label=label,
        kind=kind,
        detail=detail,
        documentation=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=doc) if doc else None,
        sort_text=f"{sort}{label}",
        filter_text=label,
        text_edit=lsp.TextEdit(range=edit_range, new_text=insert if insert is not None else label),
    )


def complete(analysis: Analysis | None, lines: list[str], where: lsp.Position) -> list[lsp.CompletionItem]:
    column = character_column(lines[where.line] if where.line < len(lines) else "", where.character)
    context = cursor_context(lines, where.line, column)
    edit_range = lsp.Range(start=position(lines, where.line, context.word_start), end=where)
    registry = _registry(analysis)
    if context.interpolation is not None:
        return _complete_interpolation(analysis, context, edit_range)
    if context.on_value and context.key == "instance_key":
        return _complete_reference(analysis, context, lines, registry, edit_range)
    if context.on_value and context.key == "variant_key":
        key = mapping_scalars(lines, where.line).get("component_key", "")
        return [_item(v, lsp.CompletionItemKind.EnumMember, edit_range, detail=registry.get(key, v).description,
                      doc=component_markdown(registry.get(key, v))) for v in registry.variants(key)]
    if context.on_value and context.key == "component_key":
        parent = governing(_parent(context), lines, registry, analysis.values if analysis else None)
        kinds = accepted_kinds(parent.model, parent.rel) or ()
        return [_item(k, lsp.CompletionItemKind.Module, edit_range, sort="0" if _produces(registry, k, kinds) else "1")
                for k in registry.component_keys()]
    if not context.on_value:
        return _complete_field(analysis, context, lines, registry, edit_range, where.line)
    return []


def _parent(context: CursorContext) -> CursorContext:
    return CursorContext(path=context.path, frames=context.frames)


def _produces(registry: Registry, component_key: str, kinds: tuple[str, ...]) -> bool:
    return any(registry.get(component_key, v).kinds_produced() & set(kinds) for v in registry.variants(component_key))


def _node_kind(registry: Registry, node: Any) -> str | None:
    spec = registry.get(node.component_key, node.variant_key) if isinstance(node.component_key, str) and isinstance(
        node.variant_key, str) else None
    return spec.kind_for(node.config) if spec else None


def _complete_reference(analysis, context, lines, registry, edit_range) -> list[lsp.CompletionItem]:
    """The file's top-level components, those of a kind the field accepts first."""
    if analysis is None or analysis.compiled is None or analysis.compiled.graph is None:
        return []
    field = governing(context, lines, registry, analysis.values)
    kinds = set(accepted_kinds(field.model, field.rel) or ())
    items = []
    for order, node in enumerate(analysis.compiled.graph.top_level_components()):
        if node.path == field.owner:
            continue  # a component never needs itself
        kind = _node_kind(registry, node)
        fits = kind in kinds or "any" in kinds
        items.append(_item(node.name, lsp.CompletionItemKind.Reference, edit_range,
                           detail=f"{node.component_key}/{node.variant_key}" + (f" (produces {kind})" if kind else ""),
                           sort=f"{0 if fits else 1}{order:05d}"))
    return items


def _complete_field(analysis, context, lines, registry, edit_range, line) -> list[lsp.CompletionItem]:
    """The fields of the class that governs the mapping, those not written yet; component node keys where a
    component belongs."""
    present = set(mapping_scalars(lines, line)) - {context.word}
    scope = governing(context, lines, registry, analysis.values if analysis else None)
    items = []
    model = model_at(scope.model, scope.rel) if scope.model is not None else None
    takes_component = accepted_kinds(scope.model, scope.rel) not in (None, ("int",))
    if model is not None and not takes_component:
        for name in model.model_fields:
            if name not in present:
                doc = field_markdown(model, name)
                detail = _rows(model)[name][1].replace("`", "") if name in _rows(model) else None
                items.append(_item(name, lsp.CompletionItemKind.Property, edit_range, detail=detail, doc=doc,
                                   sort="0", insert=f"{name}: "))
    if takes_component or "component_key" in present or (model is None and context.path):
        for name in COMPONENT_NODE_KEYS + ("instance_key",):
            if name not in present:
                items.append(_item(name, lsp.CompletionItemKind.Keyword, edit_range, sort="0", insert=f"{name}: "))
    return items


def _complete_interpolation(analysis, context, edit_range) -> list[lsp.CompletionItem]:
    """``${a.b.`` -> the keys under a.b that exist; ``${`` -> the top-level keys and the resolvers."""
    expression = context.interpolation or ""
    if ":" in expression or analysis is None or analysis.values is None:
        return []
    *parents, _ = expression.split(".")
    node = analysis.values
    for part in parents:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(path_part(part), int) and int(part) < len(node):
            node = node[int(part)]
        else:
            return []
    keys = list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
    items = [_item(str(k), lsp.CompletionItemKind.Field, edit_range, detail=_preview(node[k]), sort="0")
             for k in keys]
    if not parents:
        items += [_item(f"{name}:", lsp.CompletionItemKind.Function, edit_range, sort="1")
                  for name in resolver_names()]
    return items


def _preview(value: Any) -> str:
    if is_component_node(value):
        return f"component {value.get('component_key')}/{value.get('variant_key')}"
    if isinstance(value, dict):
        return f"mapping of {len(value)}"
    if isinstance(value, list):
        return f"list of {len(value)}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---- what the cursor is on -----------------------------------------------------------------------------


@dataclass
class Target:
    """What a position names: the config path it stands on, and where that path's name is written."""

    located: Located | None
    interpolation: tuple[str, ConfigPath | None, Span | None] | None = None  # (expression, its target, its text)
    reference_target: ConfigPath | None = None  # the component an instance_key there names


def target_at(analysis: Analysis, file: Path, lines: list[str], where: lsp.Position) -> Target:
    line_text = lines[where.line] if where.line < len(lines) else ""
    column = character_column(line_text, where.character)
    located = locate(analysis, file, where.line + 1, column + 1)
    found = Target(located)
    if located is None:
        return found
    graph = analysis.compiled.graph
    path = located.path
    reference_path = path[:-1] if path[-1:] == ("instance_key",) else path
    if graph is not None and reference_path in graph.references:
        found.reference_target = graph.references[reference_path].target
    for match in INTERPOLATION.finditer(line_text):
        if match.start() <= column <= match.end():
            expression = match.group(1).strip()
            span = Span(str(file), where.line + 1, match.start() + 1, where.line + 1, match.end() + 1)
            found.interpolation = (expression, _interpolation_target(analysis, path, expression), span)
    return found


def _interpolation_target(analysis: Analysis, at: ConfigPath, expression: str) -> ConfigPath | None:
    for written, target in analysis.compiled.document.provenance.get(at, []):
        if written == expression:
            return target
    if ":" in expression:
        return None
    node, target = analysis.values, []
    for part in absolute_parts(expression, at):
        key = path_part(str(part)) if isinstance(node, list) else part
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return None
        target.append(key)
    return tuple(target)


def _name_span(analysis: Analysis, path: ConfigPath) -> Span | None:
    source_map = analysis.compiled.document.source_map
    return source_map.keys.get(path) or source_map.value(path)


def _location(analysis: Analysis, span: Span | None) -> lsp.Location | None:
    if span is None or span.file.startswith("<"):
        return None
    file = span_file(span, analysis.path)
    return lsp.Location(uri=file.as_uri(), range=span_range(span, analysis.lines(file)))


# ---- hover ---------------------------------------------------------------------------------------------


def hover(analysis: Analysis, file: Path, lines: list[str], where: lsp.Position) -> str | None:
    """Markdown for what the cursor is on: a ${...}'s resolved value, a component's documentation (on its
    name, component_key or variant_key), a field's, or what a reference names."""
    found = target_at(analysis, file, lines, where)
    if found.located is None:
        return None
    if found.interpolation is not None:
        return _hover_interpolation(analysis, found)
    path = found.located.path
    graph = analysis.compiled.graph
    registry = analysis.compiled.registry
    node_path = path[:-1] if path[-1:] in (("component_key",), ("variant_key",)) else path
    if graph is not None and node_path in graph.nodes and (found.located.on_key or node_path != path):
        node = graph.nodes[node_path]
        spec = registry.get(node.component_key, node.variant_key) if isinstance(node.component_key, str) and \
            isinstance(node.variant_key, str) else None
        return component_markdown(spec) if spec else None
    if found.reference_target is not None:
        return _hover_component_summary(analysis, found.reference_target)
    if found.located.on_key and graph is not None:
        return _hover_field(analysis, path)
    return None


def _hover_interpolation(analysis: Analysis, found: Target) -> str:
    expression, target, _ = found.interpolation
    path = found.located.path
    try:
        whole = get_at(analysis.values, path)
    except (KeyError, IndexError, TypeError):
        whole = None
    lines = [f"`${{{expression}}}`"]
    value: Any = _MISSING
    if target is not None:
        try:
            value = get_at(analysis.values, target)
            lines.append(f"= `{_shown(value)}`")
        except (KeyError, IndexError, TypeError):
            pass
        where = _name_span(analysis, target)
        lines.append(f"from `{dotted(target)}`" + (f" ({where})" if where else ""))
    if path in analysis.compiled.document.unresolved_paths:
        lines.append("(not resolved: see the diagnostic here)")
    elif whole is not value and whole != value:  # the ${...} is part of a longer value
        lines.append(f"the value of `{dotted(path)}` is `{_shown(whole)}`")
    return "\n\n".join(lines)


_MISSING = object()


def _shown(value: Any) -> str:
    if isinstance(value, dict) and "instance_key" in value and "component_key" not in value:
        return f"component {value['instance_key']}"
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 300 else text[:297] + "..."


def _hover_component_summary(analysis: Analysis, target: ConfigPath) -> str | None:
    graph = analysis.compiled.graph
    node = graph.nodes.get(target)
    where = _name_span(analysis, target)
    if node is None:
        return f"`{dotted(target)}`" + (f" ({where})" if where else "")
    spec = analysis.compiled.registry.get(node.component_key, node.variant_key)
    summary = f"**{node.name}**: `{node.component_key}/{node.variant_key}`" + (f" ({where})" if where else "")
    return summary + (f"\n\n{spec.description}" if spec and spec.description else "")


def _hover_field(analysis: Analysis, path: ConfigPath) -> str | None:
    graph = analysis.compiled.graph
    owner = graph.owner_of(path)
    registry = analysis.compiled.registry
    if owner is not None:
        node = graph.nodes[owner]
        spec = registry.get(node.component_key, node.variant_key)
        if spec is None:
            return None
        model, rel = spec.config_class(), path[len(owner) + 1 :]
    else:
        root = registry.root_for(analysis.values) if isinstance(analysis.values, dict) else None
        if root is None:
            return None
        model, rel = root.config_class(), path
    names = [p for p in rel if isinstance(p, str)]
    if not names:
        return None
    holder = model_at(model, rel[: len(rel) - 1]) if len(rel) > 1 else model
    return field_markdown(holder, names[-1]) if holder is not None else None


# ---- definition, references, rename --------------------------------------------------------------------


def definition(analysis: Analysis, file: Path, lines: list[str], where: lsp.Position) -> lsp.Location | None:
    """From a reference (its instance_key) or a ${...} to the node it names."""
    found = target_at(analysis, file, lines, where)
    if found.interpolation is not None and found.interpolation[1] is not None:
        return _location(analysis, _name_span(analysis, found.interpolation[1]))
    if found.reference_target is not None:
        return _location(analysis, _name_span(analysis, found.reference_target))
    return None


def _subject(analysis: Analysis, found: Target) -> ConfigPath | None:
    """The path whose uses are asked for: what a reference or ${...} names, else the key under the cursor."""
    if found.interpolation is not None:
        return found.interpolation[1]
    if found.reference_target is not None:
        return found.reference_target
    if found.located is not None and found.located.on_key:
        return found.located.path
    return None


def uses(analysis: Analysis, subject: ConfigPath) -> list[tuple[Span, str, str]]:
    """Every place that names ``subject`` or a path inside it: (span of the name, the name written, kind) with
    kind "reference" (an instance_key's value) or "interpolation" (the ``${...}`` text)."""
    document = analysis.compiled.document
    found: dict[tuple, tuple[Span, str, str]] = {}
    for ref in analysis.compiled.graph.references.values() if analysis.compiled.graph else ():
        span = document.source_map.values.get(ref.path + ("instance_key",))
        if ref.target is not None and ref.target[: len(subject)] == subject and span is not None:
            found[(span.file, span.line, span.col)] = (span, str(ref.instance_key), "reference")
    for at, entries in document.provenance.items():
        span = document.source_map.value(at)
        if span is None or span.file.startswith("<"):
            continue
        for expression, target in entries:
            if target is not None and target[: len(subject)] == subject:
                for part in _expression_spans(analysis, span, expression):
                    found[(part.file, part.line, part.col)] = (part, expression, "interpolation")
    return sorted(found.values(), key=lambda item: (item[0].file, item[0].line, item[0].col))


def _expression_spans(analysis: Analysis, span: Span, expression: str) -> list[Span]:
    """Where ``${expression}`` is written inside the value at ``span``."""
    lines = analysis.lines(span_file(span, analysis.path))
    spans = []
    for number in range(span.line, span.end_line + 1):
        text = lines[number - 1] if number - 1 < len(lines) else ""
        low = span.col - 1 if number == span.line else 0
        high = span.end_col - 1 if number == span.end_line else len(text)
        for match in INTERPOLATION.finditer(text):
            if low <= match.start() and match.end() <= high and match.group(1).strip() == expression:
                spans.append(Span(span.file, number, match.start() + 1, number, match.end() + 1))
    return spans


def references(analysis: Analysis, file: Path, lines: list[str], where: lsp.Position,
               include_declaration: bool) -> list[lsp.Location]:
    found = target_at(analysis, file, lines, where)
    subject = _subject(analysis, found)
    if subject is None:
        return []
    spans = [span for span, _, _ in uses(analysis, subject)]
    if include_declaration:
        spans.insert(0, _name_span(analysis, subject))
    return [location for location in (_location(analysis, s) for s in spans) if location is not None]


def rename_subject(analysis: Analysis, file: Path, lines: list[str], where: lsp.Position) -> ConfigPath | None:
    """The top-level component a rename at the cursor would rename (on its name, or on a use of it)."""
    found = target_at(analysis, file, lines, where)
    subject = _subject(analysis, found)
    graph = analysis.compiled.graph if analysis.compiled else None
    if subject is None or graph is None:
        return None
    top = subject[:1]
    if top not in graph.nodes or (subject != top and found.located is not None and found.located.on_key):
        return None
    return top


class RenameError(ValueError):
    pass


def rename(analysis: Analysis, subject: ConfigPath, new_name: str) -> dict[str, list[lsp.TextEdit]]:
    """Edits (by file URI) that rename the top-level component ``subject`` and every use of it."""
    old = subject[0]
    if not NAME.match(new_name):
        raise RenameError(f"'{new_name}' is not a plain name (letters, digits, _ and -, not starting with a digit)")
    if new_name != old and new_name in analysis.values:
        raise RenameError(f"'{new_name}' is already a top-level key of this config")
    edits: dict[str, dict[tuple, lsp.TextEdit]] = {}

    def edit(span: Span, offset: int) -> None:
        file = span_file(span, analysis.path)
        lines = analysis.lines(file)
        start = Span(span.file, span.line, span.col + offset, span.line, span.col + offset + len(old))
        text = lines[span.line - 1] if span.line - 1 < len(lines) else ""
        if text[start.col - 1 : start.end_col - 1] == old:
            edits.setdefault(file.as_uri(), {})[(start.line, start.col)] = lsp.TextEdit(
                range=span_range(start, lines), new_text=new_name)

    key_span = analysis.compiled.document.source_map.keys.get(subject)
    if key_span is not None:
        edit(key_span, _quote_offset(analysis, key_span))
    for span, written, kind in uses(analysis, subject):
        if kind == "reference" and (written == old or written.startswith(old + ".")):
            edit(span, _quote_offset(analysis, span))
        elif kind == "interpolation":
            inner = _expression_start(written, old)
            if inner is not None:
                text = analysis.lines(span_file(span, analysis.path))[span.line - 1]
                opened = text.index("{", span.col - 1) + 1
                edit(span, opened - (span.col - 1) + (len(text[opened:]) - len(text[opened:].lstrip())) + inner)
    return {uri: list(by_place.values()) for uri, by_place in edits.items()}


def _quote_offset(analysis: Analysis, span: Span) -> int:
    text = analysis.lines(span_file(span, analysis.path))[span.line - 1]
    return 1 if text[span.col - 1 : span.col] in ("'", '"') else 0


def _expression_start(expression: str, name: str) -> int | None:
    """Where ``name`` begins in ``expression`` when the expression's path starts with it (``name.x``,
    ``oc.select:name.x,default``)."""
    for prefix in ("", "oc.select:"):
        rest = expression[len(prefix):] if expression.startswith(prefix) else None
        if rest is not None and rest.lstrip().startswith(name) and rest.lstrip()[len(name):len(name) + 1] in (
                "", ".", ","):
            return len(prefix) + len(rest) - len(rest.lstrip())
    return None
