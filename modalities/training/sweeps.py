"""The reference's sweep tools (``modalities benchmark``): expand a sweep template into one config per
combination and world size, and list the configs of such a tree whose run is not done.

A sweep template is a training config with a top-level ``sweep`` block whose lists are the values to try (nested
blocks expand too); the rest of the config refers to them as ``${sweep.<name>}``. Every combination is written,
for every world size, to ``OUTPUT/<time>_<sweep hash>/<world size>/<combination hash>_<time>/<name>`` (the
reference's layout and hashes), with ``sweep`` holding that combination's values. A run is done when its
config's folder holds an ``evaluation_results.jsonl`` of the expected number of lines, or an error log of a type
the user chose to skip (e.g. OutOfMemoryError); a config re-run in a newer ``<hash>_<time>`` folder replaces the
older one.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS_FILE = "evaluation_results.jsonl"  # what the reference's sweep runs write (not the run's results.jsonl)
RUN_FOLDER = re.compile(r"^([a-zA-Z0-9]+)_(\d{4}-\d{2}-\d{2}__\d{2}-\d{2}-\d{2})$")


class SweepError(Exception):
    pass


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


def sweep_hash(value: Any, length: int = 16) -> str:
    """The reference's hash of a config or combination: md5 of its block-style YAML, keys in order."""
    return hashlib.md5(_dump(value).encode("utf-8")).hexdigest()[:length]


def _dump(value: Any) -> str:
    """Block-style YAML with keys in their order, written by PyYAML as the reference writes it, so the hashes that
    name the folders are the reference's and its tools find the same runs."""
    import yaml

    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False)


def write_sweep_configs(template: Path, config: dict, output_dir: Path, world_sizes: list[int]) -> tuple[Path, int, int]:
    """One config per combination of ``config``'s sweep block and world size, written under a new folder of
    ``output_dir``; returns (that folder, configs written, combinations)."""
    rest = {key: value for key, value in config.items() if key != "sweep"}
    combinations = expand(config["sweep"])
    stamp = time.strftime("%Y-%m-%d__%H-%M-%S")
    root = Path(output_dir) / f"{stamp}_{sweep_hash(config)}"
    written = 0
    for combination in combinations:
        for world_size in world_sizes:
            path = root / str(world_size) / f"{sweep_hash(combination)}_{stamp}" / template.name
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(_dump({"sweep": combination, **rest}), encoding="utf-8")
            tmp.replace(path)
            written += 1
    return root, written, len(combinations)


def most_recent(configs: list[Path]) -> list[Path]:
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


def _error_types(folder: Path, on_unreadable: Callable[[Path], None] | None) -> list[str]:
    import json

    types = []
    for log in sorted(folder.rglob("error_logs_*.log")):
        try:
            types.append(json.loads(log.read_text(encoding="utf-8"))["error"]["type"])
        except (OSError, ValueError, KeyError, TypeError):
            if on_unreadable is not None:
                on_unreadable(log)
            types.append("ErrorFileParsingError")
    return types


def is_run_done(config: Path, expected_steps: int, skip_exception_types: list[str],
                on_unreadable: Callable[[Path], None] | None = None) -> bool:
    """``on_unreadable(log)`` hears of an error log that is not one (it counts as ErrorFileParsingError)."""
    results = config.parent / RESULTS_FILE
    if results.is_file():
        with results.open("rb") as lines:
            if sum(1 for _ in lines) == expected_steps:
                return True
    return bool(set(skip_exception_types) & set(_error_types(config.parent, on_unreadable)))


def sweep_configs(root: Path, world_size: int | None) -> list[Path]:
    """The configs of a tree prepare_sweep_configs wrote (of one world size, or all)."""
    size = "*" if world_size is None else str(world_size)
    return sorted(p for p in root.glob(f"**/{size}/*/*.yaml") if not p.name.endswith(".resolved.yaml"))


def copy_into_fresh_folders(configs: list[Path]) -> list[Path]:
    """Each config copied into a new ``<hash>_<time>`` folder beside its own (a partly done sweep's reruns)."""
    import shutil

    stamp = time.strftime("%Y-%m-%d__%H-%M-%S")
    moved = []
    for config in configs:
        folder = config.parent.parent / f"{RUN_FOLDER.match(config.parent.name).group(1)}_{stamp}"
        folder.mkdir(parents=True, exist_ok=True)
        moved.append(Path(shutil.copy(config, folder / config.name)))
    return moved
