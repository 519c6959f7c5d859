"""A resolved config as YAML text: what a run writes beside its results and into every checkpoint."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from modalities.config.yaml11 import reads_as_text

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


# Characters YAML counts as printable, so its writer leaves them raw in plain and quoted scalars, that a terminal
# must not receive raw: NEL, the line and paragraph separators, the bidirectional embeddings, overrides and
# isolates (a file name holding U+2066 reorders the line it is printed on). A string holding one is written
# double-quoted, where the writer escapes the first three (\N, \L, \P) and the others are escaped after it.
_RAW_IN_YAML = re.compile("[\x85\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")


def terminal_safe(yaml: Any) -> None:
    """Make ``yaml`` (a ruamel YAML object) write strings holding such characters double-quoted (its output then
    goes through escape_bidi), and quote every string that YAML 1.1 would read as something else (``on``,
    ``010``, ``1:30``, ``1e3``): ruamel decides by YAML 1.2, but we and the reference's OmegaConf read by 1.1."""

    class Representer(yaml.Representer):
        pass

    def represent_str(representer: Any, data: str) -> Any:
        style = '"' if _RAW_IN_YAML.search(data) else None if reads_as_text(data) else "'"
        return representer.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Representer.add_representer(str, represent_str)
    yaml.Representer = Representer


def escape_bidi(text: str) -> str:
    """YAML written by a ``terminal_safe`` object with its bidirectional controls escaped: each stands in a
    double-quoted scalar (where ``\\uXXXX`` is the character) or in a comment (where it is only shown)."""
    return _BIDI.sub(lambda match: f"\\u{ord(match.group()):04x}", text) if _BIDI.search(text) else text


def dump_yaml(config: dict, header: str | None = None) -> str:
    """``config`` as block-style YAML, keys in the order given (the user's), after ``header`` (comment lines).
    Safe to print: no character a terminal would act on is written raw (see _RAW_IN_YAML)."""
    from ruamel.yaml import YAML

    from modalities.config.diagnostics import printable

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False
    terminal_safe(yaml)
    buffer = io.StringIO()
    if header:  # comment lines that may name a path: shown escaped, as messages show it
        buffer.write("\n".join(printable(line) for line in header.rstrip("\n").split("\n")) + "\n")
    yaml.dump(_plain(config), buffer)
    return escape_bidi(buffer.getvalue())


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
