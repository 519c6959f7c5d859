"""``modalities components [KEY/VARIANT]``: what is registered, and the config fields of one component."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("component", nargs="?", help="component_key/variant_key to describe, or a component_key")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from modalities.config.diagnostics import did_you_mean
    from modalities.registry import default_registry
    from modalities.schema.docs import field_rows, nested_models

    registry = default_registry()
    # Piped output is not cut to a terminal's width: COLUMNS if given, else wide.
    console = Console() if sys.stdout.isatty() else Console(width=_columns())
    if not args.component or "/" not in args.component:
        key = args.component
        if key and not registry.variants(key):
            hint = did_you_mean(key, registry.component_keys())
            print(f"modalities: error: no component_key '{key}'" + (f"; {hint}" if hint else ""), file=sys.stderr)
            return 1
        specs = [spec for spec in registry if key is None or spec.component_key == key]
        rows = [
            (spec.name, spec.description + (f" (produces {spec.produces})" if spec.produces != spec.component_key else ""))
            for spec in specs
        ]
        widest = max(len(name) for name, _ in rows)
        if console.width >= widest + 30:
            table = Table(title="Registered components", show_lines=False)
            table.add_column("component_key/variant_key", no_wrap=True)  # names to copy: whole
            table.add_column("description", overflow="fold", ratio=1)
            for name, description in rows:
                table.add_row(name, Text(description))
            console.print(table)
        else:  # too narrow for names and descriptions side by side: each name on its own line
            from rich.padding import Padding

            for name, description in rows:
                console.print(Text(name, style="bold"), overflow="fold")
                console.print(Padding(Text(description), (0, 0, 0, 4)))
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
        console.print(Text(spec.description))
    console.print(Text(f"config: {spec.config_location}\nbuilder: {spec.builder_location}"))
    for module, extra in spec.requires:
        console.print(Text(f"needs the '{module}' package: pip install 'modalities[{extra}]'"))
    config_class = spec.config_class()
    console.print(_fields_table(config_class, field_rows, console.width))
    for nested in nested_models(config_class):
        doc = (nested.__doc__ or "").strip().split("\n\n")[0]
        console.print(Text("\n" + nested.__name__, style="bold") + Text(f": {' '.join(doc.split())}" if doc else ""))
        console.print(_fields_table(nested, field_rows, console.width))
    return 0


def _columns() -> int:
    import os

    try:
        return max(40, int(os.environ.get("COLUMNS", "")))
    except ValueError:
        return 240


def _fields_table(config_class, field_rows, width: int):
    """Field names are never cut: side by side with types and descriptions when the width allows, else each
    field on its own line with its type and default, the description indented below."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    rows = [
        (name + "".join(f" (also {other})" for other in others), type_text.replace("`", ""), default, description)
        for name, others, type_text, default, description in field_rows(config_class)
    ]
    if not rows:
        return Text("no fields")
    widest = max(len(name) for name, *_ in rows)
    if width >= widest + 60:
        table = Table(show_lines=False)
        table.add_column("field", no_wrap=True)
        table.add_column("type", overflow="fold", max_width=36)
        table.add_column("default", overflow="fold", max_width=24)
        table.add_column("description", overflow="fold", ratio=1)
        for name, type_text, default, description in rows:
            # Text, not markup: a type like list[str] must print as written
            table.add_row(Text(name), Text(type_text), Text(default), Text(description))
        return table
    parts = []
    for name, type_text, default, description in rows:
        given = "required" if default in ("required", "computed") else f"default {default}"
        parts.append(Text(name, style="bold") + Text(f"  {type_text}, {given}"))
        if description:
            parts.append(Padding(Text(description), (0, 0, 0, 4)))
    return Group(*parts)
