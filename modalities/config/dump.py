"""A resolved config as YAML text: what a run writes beside its results and into every checkpoint."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

_PARTIAL_SCHEMA, _DOCUMENT_SCHEMA = "modalities.partial.schema.json", "modalities.schema.json"  # schema/json_schema.py
_MODELINE = re.compile(r"^#\s*yaml-language-server:\s*\$schema=(\S+)\s*$")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def dump_yaml(config: dict, header: str | None = None) -> str:
    """``config`` as block-style YAML, keys in the order given (the user's), after ``header`` (comment lines)."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False
    buffer = io.StringIO()
    if header:
        buffer.write(header.rstrip("\n") + "\n")
    yaml.dump(_plain(config), buffer)
    return buffer.getvalue()


def schema_modeline(config_path: str | Path | None) -> str | None:
    """The config file's yaml-language-server modeline, with a relative schema path made absolute, so the saved
    copy (elsewhere) still gets completion and checking in an editor. None when the file has none. The partial
    schema of a file with `extends` becomes the whole-config schema beside it: the saved config is whole."""
    if config_path is None:
        return None
    try:
        with open(config_path, encoding="utf-8", errors="replace") as file:
            head = [file.readline() for _ in range(50)]
    except OSError:
        return None
    for line in head:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            break  # the modeline belongs to the comments before the first value
        match = _MODELINE.match(stripped)
        if match:
            target = match.group(1)
            if target.endswith(_PARTIAL_SCHEMA):
                target = target[: -len(_PARTIAL_SCHEMA)] + _DOCUMENT_SCHEMA
            if "://" not in target and not Path(target).is_absolute():
                target = str((Path(config_path).resolve().parent / target).resolve())
            return f"# yaml-language-server: $schema={target}"
    return None
