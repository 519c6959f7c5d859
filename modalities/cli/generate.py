"""``modalities generate_text CONFIG``: generate text with the config's ``inference_component/text``."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="a config with a text_inference_component (inference_component/text)")
    parser.add_argument("--config_file_path", default=None, help=argparse.SUPPRESS)  # the reference's spelling
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                        help="override a config value (repeatable)")
    parser.add_argument("--prompt-var", action="append", default=[], metavar="NAME=VALUE",
                        help="a value for a {NAME} of the prompt template instead of asking (repeatable)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="stop after this many tokens")
    parser.add_argument("--seed", type=int, default=None, help="seed torch's RNG (sampling is then reproducible)")
    parser.add_argument("--key", default=None, help="the top-level key of the component (default: the only one)")


def run(args: argparse.Namespace) -> int:
    from modalities.api import Main
    from modalities.config.build import BuildError
    from modalities.config.diagnostics import ConfigError, render_text

    config = args.config or args.config_file_path
    if not config:
        print("modalities generate_text: error: give the config (CONFIG or --config_file_path)", file=sys.stderr)
        return 2
    values = {}
    for item in args.prompt_var:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"modalities generate_text: error: --prompt-var {item!r} is not NAME=VALUE", file=sys.stderr)
            return 2
        values[name] = value
    if args.seed is not None:
        import torch

        torch.manual_seed(args.seed)
    try:
        main = Main(config_path=config, overrides=args.overrides)
        compiled = main.compile()
        compiled.raise_for_errors()
        keys = [n.path[0] for n in compiled.graph.top_level_components() if n.component_key == "inference_component"]
        key = args.key or (keys[0] if len(keys) == 1 else None)
        if key is None:
            print(f"modalities generate_text: error: {config} has {len(keys)} inference components "
                  f"({', '.join(keys) or 'none'}); name one with --key", file=sys.stderr)
            return 1
        component = main.build_components()[key]
    except ConfigError as e:
        print(render_text(e.diagnostics), file=sys.stderr)
        return 1
    except BuildError as e:
        print(f"modalities generate_text: error: {e}", file=sys.stderr)
        return 1
    try:
        component.run(max_new_tokens=args.max_new_tokens, values=values)
    except (KeyboardInterrupt, EOFError):
        print("\nmodalities generate_text: stopped", file=sys.stderr)
        return 130
    return 0
