"""The experiment folder: resolved config and results beside each other."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

RESULTS_FILE = "results.jsonl"
RESOLVED_CONFIG_FILE = "config.yaml"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def dump_yaml(config: dict) -> str:
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    buffer = io.StringIO()
    yaml.dump(_plain(config), buffer)
    return buffer.getvalue()


def prepare_experiment_folder(root: Path, experiment_id: str, config_dict: dict) -> Path:
    folder = Path(root) / experiment_id
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / RESOLVED_CONFIG_FILE
    tmp = folder / f".tmp-{RESOLVED_CONFIG_FILE}"
    tmp.write_text(dump_yaml(config_dict))
    tmp.replace(target)
    return folder


def existing_run_in(root: Path, experiment_id: str) -> Path | None:
    """The results file of an earlier run in this experiment folder, if there is one."""
    results = Path(root) / experiment_id / RESULTS_FILE
    return results if results.is_file() else None
