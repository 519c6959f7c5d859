"""``modalities components [KEY/VARIANT]``: what is registered, and the config fields of one component."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("component", nargs="?", help="component_key/variant_key to describe, or a component_key")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from modalities.config.diagnostics import did_you_mean
    from modalities.registry import default_registry

    registry = default_registry()
    console = Console() if sys.stdout.isatty() else Console(width=240)
    if not args.component or "/" not in args.component:
        key = args.component
        if key and not registry.variants(key):
            hint = did_you_mean(key, registry.component_keys())
            print(f"modalities: error: no component_key '{key}'" + (f"; {hint}" if hint else ""), file=sys.stderr)
            return 1
        table = Table(title="Registered components", show_lines=False)
        for column in ("component_key", "variant_key", "produces", "description"):
            table.add_column(column)
        for spec in registry:
            if key is None or spec.component_key == key:
                table.add_row(spec.component_key, spec.variant_key, spec.produces, spec.description)
        console.print(table)
        return 0
    component_key, _, variant_key = args.component.partition("/")
    spec = registry.get(component_key, variant_key)
    if spec is None:
        variants = registry.variants(component_key)
        candidates = [f"{component_key}/{v}" for v in variants] or [s.name for s in registry]
        hint = did_you_mean(args.component, candidates)
        print(f"modalities: error: no component {args.component}" + (f"; {hint}" if hint else ""), file=sys.stderr)
        return 1
    console.print(f"[bold]{spec.name}[/bold]  produces [cyan]{spec.produces}[/cyan]")
    if spec.description:
        console.print(spec.description)
    console.print(f"config: {spec.config_location}\nbuilder: {spec.builder_location}")
    table = Table(show_lines=False)
    for column in ("field", "type", "default", "description"):
        table.add_column(column)
    for name, info, type_text, default_text in describe_fields(spec.config_class()):
        table.add_row(name, type_text, default_text, info.description or "")
    console.print(table)
    return 0


def describe_fields(config_class):
    """(name, FieldInfo, type text, default text) for each field of a config class."""
    from pydantic_core import PydanticUndefined

    from modalities.registry.types import component_kinds_of

    for name, info in config_class.model_fields.items():
        kinds = component_kinds_of(info.metadata)
        type_text = f"component: {' | '.join(kinds)}" if kinds else _type_name(info.annotation)
        if info.default is PydanticUndefined and info.default_factory is None:
            default_text = "(required)"
        elif info.default_factory is not None:
            default_text = repr(info.default_factory())
        else:
            default_text = repr(info.default)
        yield name, info, type_text, default_text


def _type_name(annotation) -> str:
    """A short, readable type: ``list[component: dataset]``, ``int | None``, ``Literal['a', 'b']``."""
    import types
    import typing

    from modalities.registry.types import component_kinds_of

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        kinds = component_kinds_of(list(annotation.__metadata__))
        return f"component: {' | '.join(kinds)}" if kinds else _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return "Literal[" + ", ".join(repr(a) for a in args) + "]"
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(_type_name(a) for a in args)}]" if args else name
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")
