"""Pieces shared by the commands that compile a config."""

from __future__ import annotations

import argparse
import os
import sys


def add_compile_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config",
        nargs="+",
        help="the YAML config file; several are merged left to right, as `extends:` would (docs/config-format.md)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a value before validation, e.g. --set optimizer.config.lr=3e-4 (VALUE is YAML; repeatable)",
    )
    parser.add_argument("--experiments-root", default=None, help="folder for experiment outputs (default ./experiments)")
    parser.add_argument(
        "--last-checkpoint-info",
        "--last_checkpoint_info_file_path",
        dest="last_checkpoint_info",
        default=None,
        metavar="FILE",
        help="a warm start's last_checkpoint_info.json, read by ${warmstart_env:checkpoint_paths}",
    )


def config_label(config: str | list[str]) -> str:
    """How messages name the config of a command line: its file, or its files joined by ' + ', printable and cut
    to a length a terminal line holds (a hostile file name may be megabytes of control characters)."""
    from modalities.config.diagnostics import FILE_CHARS, cut, printable

    return cut(printable(config if isinstance(config, str) else " + ".join(config)), FILE_CHARS)


def use_color(stream=None) -> bool:
    stream = stream if stream is not None else sys.stderr  # looked up now: the stream may have been replaced
    return stream.isatty() and os.environ.get("NO_COLOR") is None and os.environ.get("TERM") != "dumb"
