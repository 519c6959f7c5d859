"""JSON Schemas for config files, generated from a registry.

The base is pydantic's ``model_json_schema`` of every registered config class; on top of it:

- a field annotated ``ComponentRef[...]`` takes any registered variant producing one of those kinds, or a
  reference node (``instance_key`` + ``pass_type: BY_REFERENCE``);
- a field of a plain type also takes a component producing a value of that type (a ``number_conversion``
  produces ``int``) or a reference; a list of components may be a reference to a top-level list;
- every non-string value may be an interpolation string ``${...}`` (resolved before the compiler validates);
- what the schema cannot express (cross-field validators of a config class) is named in the variant's
  description, so the editor shows it and nobody mistakes the schema for the whole check.
- per ``component_key``, the variants are ``anyOf`` branches told apart by ``const`` ``variant_key`` values,
  which yaml-language-server uses both for completion and to pick the branch whose errors it reports (it
  ignores OpenAPI ``discriminator``).

Everything is a pure function of the registry, so custom components appear as soon as they are registered.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Iterable

from pydantic import AliasChoices, BaseModel
from pydantic.json_schema import models_json_schema

from modalities.registry.registry import ComponentSpec, Registry, RegistryError
from modalities.registry.types import COMPONENT_KINDS_SCHEMA_KEY
from modalities.schema.files import write_atomic

DOCUMENT_SCHEMA_NAME = "modalities.schema.json"
# A file merged onto others (`extends:`): the same fields, none required, any of them `!delete`d.
PARTIAL_SCHEMA_NAME = "modalities.partial.schema.json"
COMPONENTS_DIR = "components"
JSON_SCHEMA_DRAFT = "http://json-schema.org/draft-07/schema#"

INTERPOLATION_DEF = "interpolation"
REFERENCE_DEF = "reference"
ANY_COMPONENT_DEF = "component"
TOP_LEVEL_ENTRY_DEF = "top_level_entry"
SETTINGS_DEF = "settings"

# What the schema leaves to `modalities validate`; repeated in the document schema's description so editors
# and readers know that a config the schema accepts may still be rejected by the compiler.
UNCHECKED_RULES = (
    "that an `instance_key` names an existing top-level entry, and of a kind the field accepts",
    "the value an interpolation `${...}` resolves to (it is checked after resolution)",
    "cross-field rules inside a config (e.g. one of two fields must be set, sizes must divide)",
    "that the graph of references has no cycles",
)

_ANNOTATION_KEYS = ("title", "description", "default", "examples", "deprecated")


class SchemaGenerationError(RegistryError):
    pass


def _def_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/$defs/{name}"}


def variant_def_name(spec: ComponentSpec) -> str:
    return f"component.{spec.component_key}.{spec.variant_key}"


def component_key_def_name(component_key: str) -> str:
    return f"component_key.{component_key}"


def kind_def_name(kind: str) -> str:
    return f"kind.{kind}"


def _config_classes(registry: Registry) -> list[tuple[ComponentSpec, type[BaseModel]]]:
    pairs = []
    for spec in registry:
        try:
            pairs.append((spec, spec.config_class()))
        except Exception as e:  # an import error names the spec, not just a module
            raise SchemaGenerationError(
                f"{spec.name}: cannot import its config class {spec.config_location}: {type(e).__name__}: {e}"
            ) from e
    return pairs


def reachable_models(roots: Iterable[type[BaseModel]]) -> list[type[BaseModel]]:
    """Every pydantic model reachable from ``roots`` through field annotations (for alias handling)."""
    seen: list[type[BaseModel]] = []
    queue = list(roots)
    while queue:
        cls = queue.pop(0)  # breadth first, in field order: the order a reader meets them
        if cls in seen:
            continue
        seen.append(cls)
        for field in cls.model_fields.values():
            queue.extend(_models_in_annotation(field.annotation))
    return seen


def _models_in_annotation(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for arg in getattr(annotation, "__args__", ()) or ():
        found.extend(_models_in_annotation(arg))
    return found


def _add_alias_choices(defs: dict[str, Any], models: list[type[BaseModel]]) -> None:
    """A field with ``AliasChoices`` accepts each of its names: add them as properties, require one of them."""
    by_title: dict[str, list[dict]] = {}
    for schema in defs.values():
        if isinstance(schema, dict) and "title" in schema:
            by_title.setdefault(schema["title"], []).append(schema)
    for cls in models:
        for field in cls.model_fields.values():
            alias = field.validation_alias
            if not isinstance(alias, AliasChoices):
                continue
            names = [c for c in alias.choices if isinstance(c, str)]
            for schema in by_title.get(cls.__name__, []):
                props = schema.get("properties", {})
                primary = names[0]
                if primary not in props:
                    continue
                for other in names[1:]:
                    props.setdefault(other, copy.deepcopy(props[primary]))
                if primary in schema.get("required", []):
                    schema["required"] = [r for r in schema["required"] if r != primary]
                    if not schema["required"]:
                        del schema["required"]
                    schema.setdefault("allOf", []).append(
                        {
                            "anyOf": [{"required": [n]} for n in names],
                            # `oneOf` would also reject both names at once, which pydantic accepts.
                        }
                    )


class _Transformer:
    """Rewrites pydantic's schemas into what a config file may hold at each place."""

    def __init__(self, registry: Registry, pydantic_defs: dict[str, Any]):
        self.registry = registry
        self.pydantic_defs = pydantic_defs
        self.used_kinds: set[str] = set()

    def alternatives_for_kinds(self, kinds: Iterable[str]) -> list[dict]:
        kinds = list(kinds)
        if "any" in kinds:
            return [_def_ref(ANY_COMPONENT_DEF), _def_ref(REFERENCE_DEF), _def_ref(INTERPOLATION_DEF)]
        refs = []
        for kind in kinds:
            if self.registry.specs_producing([kind]):
                self.used_kinds.add(kind)
                refs.append(_def_ref(kind_def_name(kind)))
        return refs + [_def_ref(REFERENCE_DEF), _def_ref(INTERPOLATION_DEF)]

    def value(self, schema: Any) -> Any:
        """Transform the schema of one value (a field, an item, an anyOf branch)."""
        if not isinstance(schema, dict):
            return schema
        if COMPONENT_KINDS_SCHEMA_KEY in schema:
            annotations = {k: schema[k] for k in _ANNOTATION_KEYS if k in schema}
            return {**annotations, "anyOf": self.alternatives_for_kinds(schema[COMPONENT_KINDS_SCHEMA_KEY])}
        if any(isinstance(b, dict) and COMPONENT_KINDS_SCHEMA_KEY in b for b in schema.get("anyOf", [])):
            # An optional component (`ComponentRef[...] | None`): its branch becomes the component alternatives.
            expanded: list = []
            for branch in schema["anyOf"]:
                if isinstance(branch, dict) and COMPONENT_KINDS_SCHEMA_KEY in branch:
                    expanded += self.alternatives_for_kinds(branch[COMPONENT_KINDS_SCHEMA_KEY])
                else:
                    expanded.append(branch)
            schema = {**schema, "anyOf": expanded}
        takes_component_list = any(_is_component_list(b) for b in [schema, *schema.get("anyOf", [])])
        schema = self.structure(schema)
        annotations = {k: schema.pop(k) for k in _ANNOTATION_KEYS if k in schema}
        branches = schema["anyOf"] if list(schema) == ["anyOf"] else [schema]
        if takes_component_list:
            # A list of components may also be a reference to a top-level list of them (`eval_dataloaders`).
            branches = [*branches, _def_ref(REFERENCE_DEF)]
        value_kinds = sorted({kind for b in branches for kind in _value_kinds_for(b)})
        value_kinds = [k for k in value_kinds if self.registry.specs_producing([k])]
        if not value_kinds and all(_is_plain_string(b) for b in branches):
            return {**annotations, **schema}  # any string already matches `${...}`
        extra = self.alternatives_for_kinds(value_kinds) if value_kinds else [_def_ref(INTERPOLATION_DEF)]
        # Keep each alternative once, in order; pydantic's Optional[...] already gives anyOf branches.
        merged: list[dict] = []
        for branch in branches + extra:
            if branch not in merged:
                merged.append(branch)
        return {**annotations, "anyOf": merged}

    def structure(self, schema: dict) -> dict:
        """Recurse into the parts of a schema that hold values."""
        schema = dict(schema)
        if "properties" in schema:
            required = set(schema.get("required", []))
            schema["properties"] = {
                name: self.value(_for_hover(name, s, name in required, self.pydantic_defs))
                for name, s in schema["properties"].items()
            }
        if isinstance(schema.get("additionalProperties"), dict):
            schema["additionalProperties"] = self.value(schema["additionalProperties"])
        if isinstance(schema.get("items"), dict):
            schema["items"] = self.value(schema["items"])
        if isinstance(schema.get("prefixItems"), list):
            # draft-07 spells tuples as an items array
            schema["items"] = [self.value(s) for s in schema.pop("prefixItems")]
        for key in ("anyOf", "oneOf"):
            if key in schema:
                schema[key] = [
                    self.structure(s) if _is_object_schema(s) or isinstance(s.get("items"), dict) else s
                    for s in schema[key]
                ]
        return schema


def describe_type(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> str:
    """A short, readable type from a field's pydantic JSON schema; ``defs`` resolves named enums."""
    if COMPONENT_KINDS_SCHEMA_KEY in schema:
        kinds = schema[COMPONENT_KINDS_SCHEMA_KEY]
        return "component: " + (" or ".join(f"`{k}`" for k in kinds) if "any" not in kinds else "any kind")
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1].removeprefix("model.")
        target = (defs or {}).get(name, {})
        return describe_type(target, defs) if "enum" in target else f"`{name}`"
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return " | ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    if "anyOf" in schema:
        return " or ".join(describe_type(s, defs) for s in schema["anyOf"])
    kind = schema.get("type")
    if kind == "array":
        if isinstance(schema.get("prefixItems"), list):
            return "[" + ", ".join(describe_type(s, defs) for s in schema["prefixItems"]) + "]"
        items = schema.get("items")
        return f"list of {describe_type(items, defs)}" if isinstance(items, dict) and items else "list"
    if kind == "object":
        values = schema.get("additionalProperties")
        return f"mapping of {describe_type(values, defs)}" if isinstance(values, dict) and values else "mapping"
    names = {"integer": "int", "number": "float", "string": "str", "boolean": "bool", "null": "null"}
    text = names.get(kind, "any") if isinstance(kind, str) else "any"
    bounds = [
        (key, symbol)
        for key, symbol in (("exclusiveMinimum", ">"), ("minimum", "≥"), ("exclusiveMaximum", "<"), ("maximum", "≤"))
        if key in schema
    ]
    if bounds:
        text += " (" + ", ".join(f"{symbol} {schema[key]}" for key, symbol in bounds) + ")"
    if "pattern" in schema:
        text += f" matching `{schema['pattern']}`"
    return text


def _for_hover(name: str, schema: dict, required: bool, defs: dict[str, Any]) -> dict:
    """Editors show a field's title and description on hover, not its type or default: add them there."""
    if not isinstance(schema, dict):
        return schema
    facts = [f"Type: {describe_type(schema, defs)}"]
    if "default" in schema:
        facts.append(f"default {json.dumps(schema['default'])}")
    elif required:
        facts.append("required")
    description = schema.get("description", "")
    return {**schema, "title": name, "description": (description + "\n\n" if description else "") + ", ".join(facts)}


def _is_component_list(schema: Any) -> bool:
    items = schema.get("items") if isinstance(schema, dict) else None
    return isinstance(items, dict) and COMPONENT_KINDS_SCHEMA_KEY in items


def _is_plain_string(schema: dict) -> bool:
    return schema.get("type") == "string" and not ({"enum", "const", "pattern", "format"} & set(schema))


def _is_object_schema(schema: Any) -> bool:
    return isinstance(schema, dict) and ("properties" in schema or schema.get("type") == "object")


# A component producing a plain value (a `number_conversion` produces `int`) may stand where a value of a
# matching JSON type is accepted.
_VALUE_KIND_TYPES = {
    "int": {"integer", "number"},
    "float": {"number"},
    "str": {"string"},
    "path": {"string"},
    "bool": {"boolean"},
    "list": {"array"},
    "dict": {"object"},
}


def _value_kinds_for(schema: Any) -> list[str]:
    if not isinstance(schema, dict) or {"enum", "const"} & set(schema):
        return []
    types = schema.get("type")
    types = set(types) if isinstance(types, list) else {types}
    return [kind for kind, accepted in _VALUE_KIND_TYPES.items() if types & accepted]


def _common_defs(top_level_description: str) -> dict[str, Any]:
    return {
        INTERPOLATION_DEF: {
            "title": "Interpolation",
            "description": "`${path.to.value}` or `${resolver:ARG}`, resolved before validation; the compiler "
            "checks the value it resolves to.",
            "type": "string",
            "pattern": r"\$\{[^}]*\}",
        },
        REFERENCE_DEF: {
            "title": "Reference",
            "description": "The component built for a top-level entry, shared (not copied). The schema cannot "
            "check that the entry exists and is of the right kind: `modalities validate` does.",
            "type": "object",
            "properties": {
                "instance_key": {
                    "type": "string",
                    "description": "Name of a top-level entry of this file (or the dotted path of a nested one).",
                },
                "pass_type": {
                    "type": "string",
                    "enum": ["BY_REFERENCE"],
                    "description": "How the component is passed: the one built object, shared.",
                },
            },
            "required": ["instance_key"],
            "additionalProperties": False,
        },
        TOP_LEVEL_ENTRY_DEF: {
            "description": top_level_description,
            "anyOf": [
                _def_ref(ANY_COMPONENT_DEF),
                _def_ref(REFERENCE_DEF),
                {"type": "array", "items": {"anyOf": [_def_ref(ANY_COMPONENT_DEF), _def_ref(REFERENCE_DEF)]}},
                _def_ref(INTERPOLATION_DEF),
            ],
        },
    }


def unchecked_validators(cls: type[BaseModel]) -> list[str]:
    """The custom validators of a config class and its sub-models: rules a JSON Schema cannot express."""
    rules = []
    for model in reachable_models([cls]):
        decorators = model.__pydantic_decorators__
        for name, decorator in {**decorators.model_validators, **decorators.field_validators}.items():
            func = getattr(decorator.func, "__func__", decorator.func)
            doc = (func.__doc__ or "").strip().splitlines()
            rules.append(f"{doc[0] if doc else name.strip('_').replace('_', ' ')} (`{model.__name__}.{name}`)")
    return rules


def _variant_def(spec: ComponentSpec, cls: type[BaseModel], config_ref: dict, config_required: bool) -> dict:
    description = f"{spec.description or spec.name}\n\nProduces: `{spec.produces}`. Config: `{spec.config_name}`."
    rules = unchecked_validators(cls)
    if rules:
        description += " Also checked by `modalities validate`, not by this schema: " + "; ".join(rules) + "."
    return {
        "title": f"{spec.component_key} / {spec.variant_key}",
        "description": description,
        "type": "object",
        "properties": {
            "component_key": {"const": spec.component_key, "description": "The kind of component."},
            "variant_key": {"const": spec.variant_key, "description": spec.description or spec.name},
            "config": {**config_ref, "description": f"The fields of `{spec.config_name}`."},
        },
        # `config` may be left out when every field has a default, as the compiler allows.
        "required": ["component_key", "variant_key"] + (["config"] if config_required else []),
        "additionalProperties": False,
    }


def generate_document_schema(registry: Registry) -> dict[str, Any]:
    """The JSON Schema of a whole config file for ``registry``. The registry's roots (a training run) type the
    top level: their fields are known properties (a component of the right kind, `settings` with its blocks),
    required when the config is of that kind (has one of the root's marker keys)."""
    pairs = _config_classes(registry)
    classes = []
    for _, cls in pairs:
        if cls not in classes:
            classes.append(cls)
    roots = list(registry.roots.values())
    root_classes = [root.config_class() for root in roots]
    key_map, collected = models_json_schema(
        [(cls, "validation") for cls in classes + [c for c in root_classes if c not in classes]],
        ref_template="#/$defs/model.{model}",
    )
    pydantic_defs: dict[str, Any] = collected.get("$defs", {})
    _add_alias_choices(pydantic_defs, reachable_models(classes))

    transformer = _Transformer(registry, pydantic_defs)
    defs: dict[str, Any] = {}
    for name, schema in pydantic_defs.items():
        defs[f"model.{name}"] = transformer.structure(schema)

    def model_ref(cls: type[BaseModel]) -> dict:
        return dict(key_map[(cls, "validation")])

    for spec, cls in pairs:
        config_required = any(f.is_required() for f in cls.model_fields.values())
        defs[variant_def_name(spec)] = _variant_def(spec, cls, model_ref(cls), config_required)
    for component_key in registry.component_keys():
        variants = [registry.get(component_key, v) for v in registry.variants(component_key)]
        defs[component_key_def_name(component_key)] = {
            "title": component_key,
            "description": f"A `{component_key}` component: one of "
            + ", ".join(f"`{v.variant_key}`" for v in variants)
            + ".",
            "anyOf": [_def_ref(variant_def_name(v)) for v in variants],
        }
    defs[ANY_COMPONENT_DEF] = {
        "title": "Component",
        "description": "A component node: `component_key`, `variant_key` and the variant's `config`.",
        "anyOf": [_def_ref(component_key_def_name(k)) for k in registry.component_keys()],
    }
    for kind in sorted(transformer.used_kinds | set(registry.kinds())):
        specs = registry.specs_producing([kind])
        defs[kind_def_name(kind)] = {
            "title": f"{kind} component",
            "description": f"A component producing `{kind}`: "
            + ", ".join(f"`{s.name}`" for s in specs)
            + ", or a reference to one.",
            "anyOf": [_def_ref(variant_def_name(s)) for s in specs],
        }

    top_level_description = "A component node, a reference to another top-level entry, or a list of these."
    defs.update(_common_defs(top_level_description))
    properties: dict[str, Any] = {}
    conditions: list[dict[str, Any]] = []
    for root, cls in zip(roots, root_classes):
        root_def = defs.pop(model_ref(cls)["$ref"].rsplit("/", 1)[-1])
        required = list(root_def.get("required", []))
        for name, schema in root_def.get("properties", {}).items():
            properties.setdefault(name, schema)
        markers = [{"required": [marker]} for marker in root.markers]
        markers += [{"required": list(pair)} for pair in _pairs(root.weak_markers)]
        then: dict[str, Any] = {"required": required}
        settings_required = _take_required(defs, root_def.get("properties", {}).get("settings"))
        if settings_required:
            then["properties"] = {"settings": settings_required}
        conditions.append({"if": {"anyOf": markers}, "then": then})
    if "settings" not in properties:
        properties["settings"] = {"type": "object", "description": "Plain values used through `${settings...}`."}
    properties["settings"] = {
        **properties["settings"],
        "description": "Plain values used through `${settings...}`; the blocks a training run reads are typed, "
        "other keys may be added.",
    }

    description = (
        "A modalities config file: `settings` plus named components. Generated by `modalities schema` from the "
        "component registry. Not checked here (run `modalities validate`): " + "; ".join(UNCHECKED_RULES) + "."
    )
    document = {
        "$schema": JSON_SCHEMA_DRAFT,
        "title": "modalities config",
        "description": description,
        "type": "object",
        "properties": properties,
        "additionalProperties": _def_ref(TOP_LEVEL_ENTRY_DEF),
        "$defs": dict(sorted(defs.items())),
    }
    if conditions:
        document["allOf"] = conditions
    return document


EXTENDS_SCHEMA = {
    "title": "extends",
    "description": "The config file(s) this one is merged onto, relative to this file; a list is merged left "
    "to right. Mappings merge key by key, lists and scalars replace, a component whose variant_key changes is "
    "replaced whole; `key: !delete` removes an inherited key, `key: !replace {...}` sets a mapping whole.",
    "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
}


def generate_partial_schema(document_schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of a file with `extends` (an experiment on top of a base): the document schema's definitions
    and completion, with nothing required (the base holds the rest; `modalities validate` checks the merged
    whole), every field also taking `!delete` (which yaml-language-server, told of the tag by
    `yaml.customTags: ["!delete scalar"]`, reads as an empty string), and `extends` at the top."""
    partial = copy.deepcopy(document_schema)
    partial.pop("allOf", None)  # the conditions that make a training run's keys required
    _relax(partial)
    partial["properties"] = {"extends": EXTENDS_SCHEMA, **partial["properties"]}
    partial["additionalProperties"] = _deletable(partial["additionalProperties"])
    partial["title"] = "modalities config, partial (a file with `extends`)"
    partial["description"] = (
        "A config file merged onto the files it `extends`: any part of a modalities config, none of it required. "
        "Generated by `modalities schema`; `modalities validate FILE` checks the merged config."
    )
    return partial


def _relax(schema: Any) -> None:
    """In place, through every subschema: no `required`, and every property also `!delete`."""
    if isinstance(schema, list):
        for item in schema:
            _relax(item)
        return
    if not isinstance(schema, dict):
        return
    if isinstance(schema.get("required"), list):
        del schema["required"]
    if isinstance(schema.get("properties"), dict):
        schema["properties"] = {name: _deletable(value) for name, value in schema["properties"].items()}
    for key in ("$defs", "definitions"):
        for value in schema.get(key, {}).values():
            _relax(value)
    for key in ("properties", "patternProperties"):
        for value in schema.get(key, {}).values():
            _relax(value)
    for key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "if", "then", "else", "not"):
        if key in schema:
            _relax(schema[key])


_DELETED = {"const": ""}  # `key: !delete` as an editor reads it


def _deletable(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    if isinstance(schema.get("anyOf"), list):
        return {**schema, "anyOf": [*schema["anyOf"], _DELETED]}
    annotations = {k: schema[k] for k in _ANNOTATION_KEYS if k in schema}
    rest = {k: v for k, v in schema.items() if k not in annotations}
    return {**annotations, "anyOf": [rest, _DELETED]} if rest else schema


def _take_required(defs: dict, schema: Any, depth: int = 0) -> dict:
    """Remove `required` from the model a property refers to (and the models of its properties, one level
    down), returning them as a schema to apply where the config is of the root's kind: a settings block is
    required and complete only in a training run."""
    if not isinstance(schema, dict) or depth > 1:
        return {}
    refs = [schema.get("$ref")] + [b.get("$ref") for b in schema.get("anyOf", []) if isinstance(b, dict)]
    name = next((r.rsplit("/", 1)[-1] for r in refs if r and r.rsplit("/", 1)[-1].startswith("model.")), None)
    if name is None or name not in defs:
        return {}
    model = defs[name]
    found: dict = {}
    required = model.pop("required", [])
    if required:
        found["required"] = required
    nested = {}
    for prop, prop_schema in model.get("properties", {}).items():
        inner = _take_required(defs, prop_schema, depth + 1)
        if inner:
            nested[prop] = inner
    if nested:
        found["properties"] = nested
    return found


def _pairs(items) -> list[tuple]:
    return [(a, b) for i, a in enumerate(items) for b in items[i + 1 :]]


def component_schema_filename(spec: ComponentSpec) -> str:
    return f"{COMPONENTS_DIR}/{spec.component_key}/{spec.variant_key}.schema.json"


def generate_component_schema(spec: ComponentSpec) -> dict[str, Any]:
    """The schema of one component node; its definitions live in the document schema two folders up."""
    return {
        "$schema": JSON_SCHEMA_DRAFT,
        "title": f"{spec.component_key} / {spec.variant_key}",
        "description": (spec.description or spec.name)
        + f"\n\nA `{spec.component_key}` node with `variant_key: {spec.variant_key}` (config `{spec.config_name}`)."
        " Generated by `modalities schema`.",
        # draft-07 ignores the siblings of a `$ref`, so it sits in an allOf.
        "allOf": [{"$ref": f"../../{DOCUMENT_SCHEMA_NAME}#/$defs/{variant_def_name(spec)}"}],
    }


def generate_schemas(registry: Registry) -> dict[str, dict[str, Any]]:
    """Every schema file for ``registry``: relative path -> schema."""
    document = generate_document_schema(registry)
    files = {DOCUMENT_SCHEMA_NAME: document, PARTIAL_SCHEMA_NAME: generate_partial_schema(document)}
    for spec in registry:
        files[component_schema_filename(spec)] = generate_component_schema(spec)
    return files


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_schemas(registry: Registry, out_dir: str | os.PathLike) -> list[Path]:
    """Write every schema file under ``out_dir`` (each through a temporary name); remove stale component files."""
    out = Path(out_dir)
    written = []
    files = generate_schemas(registry)
    for rel, schema in files.items():
        path = out / rel
        write_atomic(path, render(schema))
        written.append(path)
    for stale in _stale_component_files(out, files):
        stale.unlink()
        if not any(stale.parent.iterdir()):
            stale.parent.rmdir()
    return written


def check_schemas(registry: Registry, out_dir: str | os.PathLike) -> list[str]:
    """Relative paths under ``out_dir`` that differ from what ``registry`` generates (missing, changed, extra)."""
    out = Path(out_dir)
    files = generate_schemas(registry)
    stale = []
    for rel, schema in files.items():
        path = out / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != render(schema):
            stale.append(rel)
    stale += [p.relative_to(out).as_posix() for p in _stale_component_files(out, files)]
    return sorted(stale)


def _stale_component_files(out: Path, files: dict[str, Any]) -> list[Path]:
    components = out / COMPONENTS_DIR
    if not components.is_dir():
        return []
    return sorted(p for p in components.rglob("*.schema.json") if p.relative_to(out).as_posix() not in files)
