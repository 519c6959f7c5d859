"""``modalities diff A B [--set PATH=VALUE ...]``: what differs between two resolved configs.

A and B are config files (each composed with the files it extends, so ``diff base.yaml exp.yaml`` lists
what the experiment changes), several files joined by ``+`` (``base.yaml+tp.yaml``: merged left to right, as on
the command line of validate), or checkpoint folders (their saved config.yaml: the config of the run that wrote
them). ``--set`` applies to B, so ``modalities diff cfg.yaml cfg.yaml --set x=1`` shows everything a flag changes.
Both sides are resolved with the same experiment id (a saved config's own, when one side is a checkpoint), so
the timestamp a file would resolve to is not a difference. Exit 0 when equal, 1 when not, 2 when a side cannot
be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

IGNORED_BY_DEFAULT = (("settings", "config_file_path"), ("settings", "config_folder_path"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old", help="a config file (or files joined by +), or a checkpoint folder (its saved config.yaml)")
    parser.add_argument("new", help="a config file (or files joined by +), or a checkpoint folder")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                        help="override a value of NEW (repeatable)")
    parser.add_argument("--experiments-root", default=None, help="what ${modalities_env:experiments_root_path} is")
    parser.add_argument("--all", action="store_true",
                        help="also show settings.config_file_path and config_folder_path (where the files are)")


def _config_files(side: str) -> list[Path]:
    """The files of one side: a checkpoint folder's saved config, a file, or files joined by '+' (a path that
    exists as written is one file, even with a '+' in its name)."""
    from modalities.checkpointing.layout import CONFIG_FILE

    candidate = Path(side)
    if candidate.is_dir():
        if (candidate / CONFIG_FILE).is_file():
            return [candidate / CONFIG_FILE]
        if (candidate / "latest" / CONFIG_FILE).is_file():
            return [candidate / "latest" / CONFIG_FILE]
    if "+" in side and not candidate.exists():
        return [Path(part) for part in side.split("+") if part]
    return [candidate]


def _saved_experiment_id(path: Path) -> str | None:
    """The experiment id a saved config (a checkpoint's) was resolved with."""
    from modalities.checkpointing.layout import PROGRESS_FILE

    progress = path.parent / PROGRESS_FILE
    if not progress.is_file():
        return None
    import json

    try:
        return json.loads(progress.read_text()).get("experiment_id")
    except (OSError, ValueError):
        return None


def run(args: argparse.Namespace) -> int:
    from modalities.config.compiler import load_and_resolve
    from modalities.config.diagnostics import ConfigError, render_text
    from modalities.config.diff import diff_values, origin_function

    old_files, new_files = _config_files(args.old), _config_files(args.new)
    experiment_id = _saved_experiment_id(old_files[-1]) or _saved_experiment_id(new_files[-1]) or "diff"
    documents = []
    for paths, overrides in ((old_files, []), (new_files, args.overrides)):
        try:
            document, diagnostics = load_and_resolve(
                paths, overrides=overrides, experiment_id=experiment_id, experiments_root=args.experiments_root
            )
        except ConfigError as e:
            print(render_text(e.diagnostics), file=sys.stderr)
            return 2
        errors = [d for d in diagnostics if d.severity == "error"]
        if errors:
            print(render_text(errors), file=sys.stderr)
            return 2
        documents.append(document)
    old, new = documents
    differences = diff_values(old.values, new.values, origin_function(old), origin_function(new))
    if not args.all:
        differences = [d for d in differences if d.path not in IGNORED_BY_DEFAULT]
    for difference in differences:
        print(difference.render())
    if not differences:
        print(f"{args.old} and {args.new} resolve to the same config")
        return 0
    print(f"{len(differences)} difference{'s' * (len(differences) != 1)}", file=sys.stderr)
    return 1
