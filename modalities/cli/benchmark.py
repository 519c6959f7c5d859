"""``modalities benchmark``: the reference's sweep tools, ``prepare_sweep_configs`` and ``list_remaining_runs``
(training/sweeps.py does the work and describes the layout)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark_command", metavar="SUBCOMMAND", required=True)
    prepare = sub.add_parser("prepare_sweep_configs", help="expand a sweep template into one config per combination")
    prepare.add_argument("--sweep_config_path", required=True, help="the sweep template")
    prepare.add_argument("--output_dir", required=True, help="folder for the expanded configs")
    prepare.add_argument("--world_sizes", default="2", help="comma-separated world sizes, e.g. 2,4,8 (default 2)")
    remaining = sub.add_parser("list_remaining_runs", help="write the configs of a sweep whose runs are not done")
    remaining.add_argument("--exp_root", required=True, help="the folder prepare_sweep_configs wrote")
    remaining.add_argument("--file_list_path", required=True, help="file to write the config paths to, one a line")
    remaining.add_argument(
        "--expected_steps", required=True, type=int, help="lines of evaluation_results.jsonl of a finished run"
    )
    remaining.add_argument("--world_size", type=int, default=None, help="only the configs of this world size")
    remaining.add_argument(
        "--create_new_folders_if_partially_done",
        action="store_true",
        help="when some runs are done, copy each remaining config into a fresh <hash>_<time> folder",
    )
    remaining.add_argument(
        "--skip_exception_types",
        default="",
        help="comma-separated error types that count as done (a rerun would fail the same way), e.g. OutOfMemoryError",
    )


def run(args: argparse.Namespace) -> int:
    if args.benchmark_command == "list_remaining_runs":
        return list_remaining_runs(args)
    import yaml

    from modalities.training.sweeps import write_sweep_configs

    try:
        world_sizes = [int(size) for size in args.world_sizes.split(",")]
    except ValueError:
        print(
            f"modalities benchmark: error: --world_sizes must be comma-separated integers, got {args.world_sizes!r}",
            file=sys.stderr,
        )
        return 2
    template = Path(args.sweep_config_path)
    try:
        # PyYAML reads it as the reference does (YAML 1.1), so combinations and hashes are the reference's.
        config = yaml.safe_load(template.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        print(f"modalities benchmark: error: cannot read {template}: {e}", file=sys.stderr)
        return 1
    if not isinstance(config, dict) or not isinstance(config.get("sweep"), dict):
        print(f"modalities benchmark: error: {template} has no top-level `sweep` block", file=sys.stderr)
        return 1
    root, written, combinations = write_sweep_configs(template, config, Path(args.output_dir), world_sizes)
    print(f"wrote {written} configs ({combinations} combinations x world sizes {world_sizes}) under {root}")
    return 0


def _unreadable_error_log(log: Path) -> None:
    print(f"modalities benchmark: warning: {log} is not an error log; counted as ErrorFileParsingError", file=sys.stderr)


def list_remaining_runs(args: argparse.Namespace) -> int:
    from modalities.training.sweeps import (
        SweepError,
        copy_into_fresh_folders,
        is_run_done,
        most_recent,
        sweep_configs,
    )

    root = Path(args.exp_root).resolve()
    if not root.is_dir():
        print(f"modalities benchmark: error: --exp_root {root} is not a folder", file=sys.stderr)
        return 1
    configs = sweep_configs(root, args.world_size)
    if not configs:
        size = "*" if args.world_size is None else str(args.world_size)
        print(f"modalities benchmark: warning: no configs under {root}/**/{size}/*/", file=sys.stderr)
        return 0
    skip = [name for name in args.skip_exception_types.split(",") if name]
    try:
        newest = most_recent(configs)
    except SweepError as e:
        print(f"modalities benchmark: error: {e}", file=sys.stderr)
        return 1
    remaining = [config for config in newest
                 if not is_run_done(config, args.expected_steps, skip, on_unreadable=_unreadable_error_log)]
    if set(remaining) != set(configs) and args.create_new_folders_if_partially_done:
        remaining = copy_into_fresh_folders(remaining)
    out = Path(args.file_list_path)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("".join(f"{config}\n" for config in remaining), encoding="utf-8")
    tmp.replace(out)
    print(f"{len(remaining)} of {len(newest)} runs remain; listed in {out}")
    return 0
