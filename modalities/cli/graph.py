"""``modalities graph CONFIG -o OUT``: draw the component graph (.dot .mmd .svg .png; ``-o -`` prints DOT)."""

from __future__ import annotations

import argparse
import sys

from modalities.cli.common import add_compile_arguments, config_label, use_color


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_compile_arguments(parser)
    parser.add_argument(
        "-o",
        "--out",
        default="-",
        metavar="FILE",
        help="output file; the extension picks the format: .dot .mmd (Mermaid) need nothing more, .svg .png need "
        "Graphviz's `dot`; '-' prints DOT (default)",
    )
    parser.add_argument("--title", default=None, help="a title above the picture (default: the config's path)")
    parser.add_argument(
        "--all-edges",
        action="store_true",
        help="draw every ${settings...} a component reads as its own edge to the settings node (by default each "
        "component's node counts them, which keeps a whole run's picture readable)",
    )


def run(args: argparse.Namespace) -> int:
    from modalities.config.compiler import compile_file
    from modalities.config.diagnostics import ERROR, ConfigError, render_text
    from modalities.config.graph_render import GraphRenderError, display_graph, output_format, render_to_file, to_dot

    if args.out != "-":
        try:
            output_format(args.out)  # a bad extension is reported before the config is compiled
        except GraphRenderError as e:
            print(f"modalities graph: error: {e}", file=sys.stderr)
            return 2
    try:
        compiled = compile_file(
            args.config,
            overrides=args.overrides,
            experiments_root=args.experiments_root,
            last_checkpoint_info=args.last_checkpoint_info,
        )
    except ConfigError as e:
        print(render_text(e.diagnostics, color=use_color()), file=sys.stderr)
        return 2
    errors = [d for d in compiled.diagnostics if d.severity == ERROR]
    if errors:
        # The picture still helps to find the mistake, so it is drawn; the exit status says the config is wrong.
        print(render_text(errors, color=use_color()), file=sys.stderr)
        print(f"{config_label(args.config)}: {len(errors)} error(s); the graph is drawn as far as it is known", file=sys.stderr)
    title = args.title if args.title is not None else config_label(args.config)
    graph = display_graph(compiled, all_edges=args.all_edges)
    try:
        if args.out == "-":
            sys.stdout.write(to_dot(graph, title))
        else:
            written = render_to_file(graph, args.out, title)
            print(f"wrote {written} ({graph.number_of_nodes()} components, {graph.number_of_edges()} edges)")
    except GraphRenderError as e:
        print(f"modalities graph: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"modalities graph: error: cannot write {args.out}: {e}", file=sys.stderr)
        return 2
    return 1 if errors else 0
