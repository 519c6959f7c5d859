"""``modalities benchmark``: the reference's sweep tools.

``prepare_sweep_configs`` expands a sweep template into one config per combination. A sweep template is a
training config with a top-level ``sweep`` block whose lists are the values to try (nested blocks expand too);
the rest of the config refers to them as ``${sweep.<name>}``. Every combination is written, for every world size,
to ``OUTPUT/<time>_<sweep hash>/<world size>/<combination hash>_<time>/<name>`` (the reference's layout and
hashes), with ``sweep`` holding that combination's values.

``list_remaining_runs`` lists the configs of such a tree whose run is not done: done means the config's folder
holds an ``evaluation_results.jsonl`` of the expected number of lines, or an error log (``--error-log-folder``)
of a type the user chose to skip (e.g. OutOfMemoryError). A config re-run in a newer ``<hash>_<time>`` folder
replaces the older one.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import re
import sys
import time
from pathlib import Path
from typing import Any


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


def expand(sweep: Any) -> list[Any]:
    """Every combination of a sweep block: lists are alternatives, mappings expand their values jointly."""
    if isinstance(sweep, dict):
        if not sweep:
            return [{}]
        keys, options = zip(*((key, expand(value)) for key, value in sweep.items()))
        return [dict(zip(keys, combination)) for combination in itertools.product(*options)]
    if isinstance(sweep, list):
        return sweep
    return [sweep]


def _hash(value: Any, length: int = 16) -> str:
    """The reference's hash of a config or combination: md5 of its block-style YAML, keys in order."""
    return hashlib.md5(_dump(value).encode("utf-8")).hexdigest()[:length]


def _dump(value: Any) -> str:
    """Block-style YAML with keys in their order, written by PyYAML as the reference writes it, so the hashes that
    name the folders are the reference's and its tools find the same runs."""
    import yaml

    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False)


def run(args: argparse.Namespace) -> int:
    if args.benchmark_command == "list_remaining_runs":
        return list_remaining_runs(args)
    import yaml

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
    rest = {key: value for key, value in config.items() if key != "sweep"}
    combinations = expand(config["sweep"])
    stamp = time.strftime("%Y-%m-%d__%H-%M-%S")
    root = Path(args.output_dir) / f"{stamp}_{_hash(config)}"
    written = 0
    for combination in combinations:
        for world_size in world_sizes:
            path = root / str(world_size) / f"{_hash(combination)}_{stamp}" / template.name
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(_dump({"sweep": combination, **rest}), encoding="utf-8")
            tmp.replace(path)
            written += 1
    print(f"wrote {written} configs ({len(combinations)} combinations x world sizes {world_sizes}) under {root}")
    return 0


RESULTS_FILE = "evaluation_results.jsonl"
RUN_FOLDER = re.compile(r"^([a-zA-Z0-9]+)_(\d{4}-\d{2}-\d{2}__\d{2}-\d{2}-\d{2})$")


class SweepError(Exception):
    pass


def _most_recent(configs: list[Path]) -> list[Path]:
    """Of the configs sharing a combination hash (reruns in newer ``<hash>_<time>`` folders), the newest."""
    newest: dict[Path, tuple[str, Path]] = {}
    for config in configs:
        match = RUN_FOLDER.match(config.parent.name)
        if match is None:
            raise SweepError(
                f"{config}: its folder {config.parent.name!r} is not <hash>_YYYY-MM-DD__HH-MM-SS; "
                "list only trees written by prepare_sweep_configs"
            )
        key = config.parent.parent / match.group(1)
        if key not in newest or match.group(2) > newest[key][0]:
            newest[key] = (match.group(2), config)
    return [config for _, config in newest.values()]


def _error_types(folder: Path) -> list[str]:
    import json

    types = []
    for log in sorted(folder.rglob("error_logs_*.log")):
        try:
            types.append(json.loads(log.read_text(encoding="utf-8"))["error"]["type"])
        except (OSError, ValueError, KeyError, TypeError):
            print(
                f"modalities benchmark: warning: {log} is not an error log; counted as ErrorFileParsingError",
                file=sys.stderr,
            )
            types.append("ErrorFileParsingError")
    return types


def is_run_done(config: Path, expected_steps: int, skip_exception_types: list[str]) -> bool:
    results = config.parent / RESULTS_FILE
    if results.is_file():
        with results.open("rb") as lines:
            if sum(1 for _ in lines) == expected_steps:
                return True
    return bool(set(skip_exception_types) & set(_error_types(config.parent)))


def list_remaining_runs(args: argparse.Namespace) -> int:
    import shutil

    root = Path(args.exp_root).resolve()
    if not root.is_dir():
        print(f"modalities benchmark: error: --exp_root {root} is not a folder", file=sys.stderr)
        return 1
    size = "*" if args.world_size is None else str(args.world_size)
    configs = sorted(p for p in root.glob(f"**/{size}/*/*.yaml") if not p.name.endswith(".resolved.yaml"))
    if not configs:
        print(f"modalities benchmark: warning: no configs under {root}/**/{size}/*/", file=sys.stderr)
        return 0
    skip = [name for name in args.skip_exception_types.split(",") if name]
    try:
        newest = _most_recent(configs)
    except SweepError as e:
        print(f"modalities benchmark: error: {e}", file=sys.stderr)
        return 1
    remaining = [config for config in newest if not is_run_done(config, args.expected_steps, skip)]
    if set(remaining) != set(configs) and args.create_new_folders_if_partially_done:
        stamp = time.strftime("%Y-%m-%d__%H-%M-%S")
        moved = []
        for config in remaining:
            folder = config.parent.parent / f"{RUN_FOLDER.match(config.parent.name).group(1)}_{stamp}"
            folder.mkdir(parents=True, exist_ok=True)
            moved.append(Path(shutil.copy(config, folder / config.name)))
        remaining = moved
    out = Path(args.file_list_path)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("".join(f"{config}\n" for config in remaining), encoding="utf-8")
    tmp.replace(out)
    print(f"{len(remaining)} of {len(newest)} runs remain; listed in {out}")
    return 0
