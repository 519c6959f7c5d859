"""``modalities docs``: write the Markdown component reference, or check that the committed one is fresh."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o", "--out", default="docs/components.md", metavar="FILE", help="where to write (default docs/components.md)"
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if FILE differs from the registry")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from modalities.registry import default_registry
    from modalities.schema.docs import generate_docs, write_docs
    from modalities.schema.json_schema import SchemaGenerationError

    registry = default_registry()
    out = Path(args.out)
    try:
        if args.check:
            current = out.read_text(encoding="utf-8") if out.is_file() else None
            if current != generate_docs(registry, out):
                print(f"modalities docs: {out} is stale; regenerate it with: modalities docs -o {out}", file=sys.stderr)
                return 1
            print(f"{out} is up to date ({len(registry)} components)")
            return 0
        write_docs(registry, out)
    except SchemaGenerationError as e:
        print(f"modalities docs: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"modalities docs: error: cannot write {out}: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({len(registry)} components)")
    return 0
