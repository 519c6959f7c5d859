"""``modalities lsp``: the config compiler as a language server for editors (LSP over stdin/stdout)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stdio", action="store_true", help="speak LSP over stdin/stdout (the default and only way)")
    parser.add_argument(
        "--debounce-ms",
        type=float,
        default=50.0,
        help="changes that arrive while a config is checked wait this long after the last of them before the "
        "next check (one edit alone is checked at once)",
    )
    parser.add_argument("--log-file", default=None, help="write the server's log here (default: stderr)")


def run(args: argparse.Namespace) -> int:
    import logging

    try:
        from modalities.lsp.server import serve
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in ("pygls", "lsprotocol", "cattrs"):
            print(f"modalities lsp needs the '{e.name}' package: pip install 'modalities[lsp]'", file=sys.stderr)
            return 2
        raise
    handler = logging.FileHandler(args.log_file) if args.log_file else logging.StreamHandler(sys.stderr)
    logging.basicConfig(level=logging.INFO, handlers=[handler], format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("pygls").setLevel(logging.WARNING)  # it logs every message at INFO
    serve(debounce=max(args.debounce_ms, 0.0) / 1000)
    return 0
