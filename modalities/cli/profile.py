"""``modalities profile CONFIG`` (also the reference's ``profile distributed --config_file_path CFG
--experiment_root_path DIR``): step the config's ``steppable_component`` under its ``profiler`` as many times as
the profiler needs, under torchrun too."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mode_or_config", nargs="?", help="CONFIG, or the reference's `distributed`/`single_process`")
    parser.add_argument("--config_file_path", default=None, help="the config (the reference's spelling)")
    parser.add_argument("--experiment_root_path", "--experiments-root", dest="experiments_root", default=None,
                        help="folder for experiment outputs (default ./experiments)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                        help="override a config value (repeatable)")


def run(args: argparse.Namespace) -> int:
    from modalities.api import Main
    from modalities.config.build import BuildError
    from modalities.config.diagnostics import ConfigError, render_text

    config = args.config_file_path
    if args.mode_or_config not in (None, "distributed", "single_process"):
        config = args.mode_or_config
    if not config:
        print("modalities profile: error: give the config (CONFIG or --config_file_path)", file=sys.stderr)
        return 2
    from modalities.training.distributed import ensure_process_group

    try:
        main = Main(config_path=config, overrides=args.overrides, experiments_root=args.experiments_root)
        missing = [key for key in ("steppable_component", "profiler") if key not in main.config_dict]
        if missing:
            print(f"modalities profile: error: {config} needs the top-level key(s) {', '.join(missing)}", file=sys.stderr)
            return 1
        main.validate()
        import torch

        ensure_process_group("cuda" if torch.cuda.is_available() else "cpu")
        components = main.build_components()
    except ConfigError as e:
        print(render_text(e.diagnostics), file=sys.stderr)
        return 1
    except BuildError as e:
        print(f"modalities profile: error: {e}", file=sys.stderr)
        return 1
    from modalities.profiling.steppable import run_profiling

    steps = run_profiling(components["steppable_component"], components["profiler"])
    print(f"profiled {steps} steps")
    return 0
