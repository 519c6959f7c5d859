"""The Markdown component reference, generated from a registry (``modalities docs``).

One section per ``component_key``: a table of its variants (implementation, configuration, interface,
description), then each variant's config fields with type, default and description. Builders are named, never
imported, so writing the reference needs no torch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel
from pydantic.fields import FieldInfo

from modalities.registry.registry import ComponentSpec, Registry
from modalities.schema.files import write_atomic
from modalities.schema.json_schema import SchemaGenerationError, describe_type, reachable_models

REPO_ROOT = Path(__file__).resolve().parents[2]
HEADER = (
    "# Components\n\n"
    "Generated from the component registry by `modalities docs -o docs/components.md`; do not edit by hand.\n"
    "A field whose type is *component* takes an inline component node of one of the kinds named, or a reference "
    "`{instance_key: NAME, pass_type: BY_REFERENCE}`; an `int` field may also take a component producing `int` "
    "(`number_conversion`). Every value may be an interpolation `${...}`.\n"
)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _source_link(location: str, doc_dir: Path | None) -> str:
    """``pkg.module:attr`` as a link to the module's file when it lies in this repository (relative to
    ``doc_dir``, or a file URI when it is None)."""
    module, _, attr = location.partition(":")
    label = f"`{attr or module}`"
    base = REPO_ROOT / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            target = candidate.as_uri() if doc_dir is None else Path(os.path.relpath(candidate, doc_dir)).as_posix()
            return f"[{label}]({target})"
    return f"{label} (`{module}`)"


def _default_of(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        try:
            value = info.default_factory()
        except TypeError:
            return "computed"
    else:
        value = info.default
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    try:
        return f"`{json.dumps(value)}`"
    except TypeError:
        return f"`{value!r}`"


def field_rows(cls: type[BaseModel], schema: dict[str, Any] | None = None, defs: dict[str, Any] | None = None):
    """(field name, other accepted names, type, default, description) of each field of a config class, typed
    as its JSON Schema says (what the docs and `modalities components` show). Defaults are JSON text, or
    "required"/"computed"."""
    if schema is None:
        schema = cls.model_json_schema(ref_template="#/$defs/{model}")
        defs = schema.get("$defs", {})
    properties = schema.get("properties", {})
    for name, info in cls.model_fields.items():
        prop_name = name
        if prop_name not in properties and isinstance(info.validation_alias, AliasChoices):
            prop_name = next((c for c in info.validation_alias.choices if c in properties), name)
        alias = info.validation_alias
        choices = [c for c in alias.choices if isinstance(c, str)] if isinstance(alias, AliasChoices) else []
        others = [n for n in choices if n != name]
        type_text = describe_type(properties.get(prop_name, {}), defs or {})
        yield name, others, type_text, _default_of(info).strip("`"), info.description or ""


def _field_table(cls: type[BaseModel], schema: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    if not cls.model_fields:
        return ["No fields.", ""]
    lines = ["| Field | Type | Default | Description |", "|---|---|---|---|"]
    for name, others, type_text, default, description in field_rows(cls, schema, defs):
        names = f"`{name}`" + (" (also " + ", ".join(f"`{n}`" for n in others) + ")" if others else "")
        default_cell = default if default in ("required", "computed") else f"`{default}`"
        lines.append(f"| {names} | {_cell(type_text)} | {_cell(default_cell)} | {_cell(description)} |")
    return lines + [""]


def nested_models(cls: type[BaseModel]) -> list[type[BaseModel]]:
    """Plain sub-models used by ``cls``'s fields (not components), each once, in field order."""
    return [m for m in reachable_models([cls]) if m is not cls]


def _first_paragraph(doc: str) -> str:
    return " ".join(doc.split("\n\n")[0].split())


def variant_markdown(spec: ComponentSpec) -> str:
    """One variant's section of the reference (what `modalities components KEY/VARIANT` shows), links to the
    source as file URIs: an editor's hover (modalities lsp)."""
    return "\n".join(_variant_section(spec, None)).rstrip() + "\n"


def _variant_section(spec: ComponentSpec, doc_dir: Path | None) -> list[str]:
    try:
        cls = spec.config_class()
    except Exception as e:
        raise SchemaGenerationError(f"{spec.name}: cannot import its config class {spec.config_location}: {e}") from e
    schema = cls.model_json_schema(ref_template="#/$defs/{model}")
    defs = schema.get("$defs", {})
    lines = [f"### {spec.component_key} / {spec.variant_key}", ""]
    doc = (cls.__doc__ or "").strip()
    if spec.description:
        lines += [spec.description, ""]
    lines += [
        f"Produces `{spec.produces}`. Configuration "
        f"{_source_link(spec.config_location, doc_dir)}" + (f": {_first_paragraph(doc)}" if doc else "."),
        "",
    ]
    lines += _field_table(cls, schema, defs)
    for nested in nested_models(cls):
        nested_schema = defs.get(nested.__name__, nested.model_json_schema(ref_template="#/$defs/{model}"))
        nested_doc = (nested.__doc__ or "").strip().splitlines()
        lines += [f"`{nested.__name__}`" + (f": {nested_doc[0]}" if nested_doc else ""), ""]
        lines += _field_table(nested, nested_schema, defs)
    return lines


def generate_docs(registry: Registry, out_path: str | Path = "docs/components.md") -> str:
    """The Markdown reference of every component in ``registry``; links are relative to ``out_path``."""
    doc_dir = Path(out_path).resolve().parent
    lines = [HEADER]
    keys = registry.component_keys()
    lines += ["Component types: " + ", ".join(f"[{k}](#{_anchor(k)})" for k in keys) + ".", ""]
    for key in keys:
        specs = [registry.get(key, v) for v in registry.variants(key)]
        lines += [f"## {key}", ""]
        lines += [
            "| Component type | Variant | Implementation | Configuration | Interface | Description |",
            "|---|---|---|---|---|---|",
        ]
        for spec in specs:
            interface = f"`{spec.interface}`" if spec.interface else f"`{spec.produces}`"
            lines.append(
                f"| {key} | [{spec.variant_key}](#{_anchor(f'{key} / {spec.variant_key}')}) "
                f"| {_cell(_source_link(spec.builder_location, doc_dir))} "
                f"| {_cell(_source_link(spec.config_location, doc_dir))} | {_cell(interface)} "
                f"| {_cell(spec.description)} |"
            )
        lines.append("")
        for spec in specs:
            lines += _variant_section(spec, doc_dir)
    return "\n".join(lines).rstrip() + "\n"


def _anchor(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to dashes."""
    kept = "".join(c for c in heading.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def write_docs(registry: Registry, out_path: str | Path) -> Path:
    """Write the reference to ``out_path`` through a temporary name."""
    return write_atomic(out_path, generate_docs(registry, out_path))
