"""``modalities schema``: write the JSON Schemas for editors, or check that the committed ones are fresh."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--out",
        default="schemas",
        metavar="DIR",
        help="folder for modalities.schema.json and components/ (default: schemas)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 and list the files under DIR that differ from what the registry generates",
    )


def run(args: argparse.Namespace) -> int:
    from modalities.registry import default_registry
    from modalities.schema.json_schema import SchemaGenerationError, check_schemas, write_schemas

    registry = default_registry()
    try:
        if args.check:
            stale = check_schemas(registry, args.out)
            if stale:
                print(f"modalities schema: {len(stale)} file(s) in {args.out}/ are stale:", file=sys.stderr)
                for rel in stale:
                    print(f"  {args.out}/{rel}", file=sys.stderr)
                print(f"regenerate them with: modalities schema -o {args.out}", file=sys.stderr)
                return 1
            print(f"{args.out}/ is up to date ({len(registry)} components)")
            return 0
        written = write_schemas(registry, args.out)
    except SchemaGenerationError as e:
        print(f"modalities schema: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"modalities schema: error: cannot write to {args.out}: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} schema files to {args.out}/ ({len(registry)} components)")
    return 0
