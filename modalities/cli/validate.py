"""``modalities validate CONFIG``: every error of a config at once, each with file:line:col, nothing built."""

from __future__ import annotations

import argparse
import sys

from modalities.cli.common import add_compile_arguments, config_label, use_color


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_compile_arguments(parser)
    parser.add_argument(
        "--resume",
        default=None,
        metavar="CHECKPOINT",
        help="check the config as it would continue from this checkpoint folder (as `train --resume` does): its "
        "learning-rate schedule against the one saved there",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text", help="how to print diagnostics")
    parser.add_argument(
        "--print-resolved",
        action="store_true",
        help="print the config after --set and ${...} as YAML on stdout (everything else goes to stderr)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print only errors (the exit status says the rest)")
    parser.add_argument(
        "--provenance",
        action="store_true",
        help="with --print-resolved: each value's origin as a comment (file:line, <--set>, the ${...} it came "
        "through, or `default` for a field the component's config class fills in)",
    )
    parser.add_argument(
        "--as",
        dest="root",
        choices=("auto", "training", "components"),
        default="auto",
        help="what the config must be: `training` (a run `modalities train` accepts: settings, the run's components "
        "and their contract), `components` (only each component), `auto` (training when it has app_state or "
        "train_dataloader; the default)",
    )


def run(args: argparse.Namespace) -> int:
    from modalities.config.compiler import compile_file
    from modalities.config.diagnostics import (
        ERROR,
        WARNING,
        ConfigError,
        render_json,
        render_text,
    )

    try:
        compiled = compile_file(
            args.config,
            root=None if args.root == "components" else args.root,
            overrides=args.overrides,
            experiments_root=args.experiments_root,
            last_checkpoint_info=args.last_checkpoint_info,
            resume_from=args.resume,
        )
    except ConfigError as e:
        compiled, diagnostics = None, e.diagnostics
    else:
        diagnostics = compiled.diagnostics
    errors = [d for d in diagnostics if d.severity == ERROR]
    shown = errors if args.quiet else diagnostics
    # stdout carries one thing: the resolved YAML when asked for, else the report.
    report = sys.stderr if args.print_resolved else sys.stdout
    if args.format == "json":
        print(render_json(shown), file=report)
    else:
        if shown:
            print(render_text(shown, color=use_color()), file=sys.stderr)
        if errors:
            warnings = sum(d.severity == WARNING for d in diagnostics)
            summary = f"{config_label(args.config)}: {len(errors)} error{'s' * (len(errors) != 1)}"
            print(summary + (f", {warnings} warning{'s' * (warnings != 1)}" if warnings else ""), file=sys.stderr)
        elif not args.quiet:
            print(_summary(config_label(args.config), compiled, sum(d.severity == WARNING for d in diagnostics)), file=report)
    if args.print_resolved and compiled is not None:
        if args.provenance:
            from modalities.config.provenance import annotated_yaml

            sys.stdout.write(annotated_yaml(compiled))
        else:
            from modalities.config.dump import dump_yaml

            sys.stdout.write(dump_yaml(compiled.document.values))
    return 1 if errors else 0


def _summary(config: str, compiled, warnings: int) -> str:
    from modalities.config.diagnostics import FILE_CHARS, PATH_CHARS, cut, printable

    graph = compiled.graph
    config = cut(printable(config), FILE_CHARS)
    order = [cut(printable(".".join(map(str, p))), PATH_CHARS) for p in graph.build_order()]
    top = len(graph.top_level_components())
    if compiled.root is not None:
        kind = f" as a {compiled.root.spec.name} run"
    else:
        kind = " (as components: it has no app_state or train_dataloader, so it is not a run `modalities train` takes)"
    lines = [
        f"{config}: ok{kind}, {len(graph.nodes)} components ({top} top-level), {len(graph.references)} references"
        + (f", {warnings} warning{'s' * (warnings != 1)}" if warnings else ""),
        "build order: " + " -> ".join(order[:30]) + (f" ... ({len(order) - 30} more)" if len(order) > 30 else ""),
    ]
    return "\n".join(lines)
