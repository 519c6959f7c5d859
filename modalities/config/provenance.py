"""Where each value of a compiled config came from, printed as the resolved YAML with a trailing comment per
value (``modalities validate CFG --print-resolved --provenance``):

    lr: 0.0003              # configs/x.yaml:41
    total_steps: 30         # ${settings.training_target.num_target_steps} <- configs/x.yaml:35
    world_size: 1           # ${cuda_env:WORLD_SIZE}
    num_target_steps: 100   # <--set>
    eps: 1.0e-08            # default

A value written in the file names its line; one set on the command line says ``<--set>``; one that came
through ``${...}`` names the expression and, for a path, the line of the value it read; a field the config does
not write but its component's config class fills in says ``default`` (listed under the component's config).
"""

from __future__ import annotations

import io
from typing import Any

from modalities.config.diagnostics import printable
from modalities.config.dump import escape_bidi, terminal_safe
from modalities.config.spans import OVERRIDE_FILE, Path, Span


def _where(span: Span | None) -> str:
    if span is None:
        return "?"
    return OVERRIDE_FILE if span.file == OVERRIDE_FILE else f"{span.file}:{span.line}"


def origin_of(compiled, path: Path) -> str:
    """The comment for the value at ``path``: for an interpolated value each expression, with ``<- file:line`` of
    the path it read (none for a resolver), joined by ", "; else where the value (or its nearest ancestor with a
    position) was written, ``<--set>`` for a flag; ``?`` where nothing is known."""
    document = compiled.document
    interpolations = document.provenance.get(path)
    if interpolations:
        parts = []
        for expression, target in interpolations:
            if target is None:
                parts.append(f"${{{expression}}}")
            else:
                parts.append(f"${{{expression}}} <- {_where(document.source_map.value(target))}")
        return ", ".join(parts)
    return _where(document.source_map.values.get(path) or document.source_map.value(path))


def _defaults(compiled) -> dict[Path, dict[str, Any]]:
    """config path of each validated component -> the fields its config class fills in with defaults."""
    found: dict[Path, dict[str, Any]] = {}
    if compiled.validated is None:
        return found
    for path, node in compiled.validated.nodes.items():
        config = node.config or node.partial
        raw = node.node.config if isinstance(node.node.config, dict) else {}
        if config is None:
            continue
        defaults = {}
        for name, info in type(config).model_fields.items():
            keys = {name} | ({info.alias} if info.alias else set())
            if keys & set(raw) or info.is_required():
                continue
            defaults[name] = _plain(getattr(config, name, None))
        if defaults:
            found[path + ("config",)] = defaults
    return found


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "model_dump"):
        return _plain(value.model_dump())
    if hasattr(value, "value") and isinstance(getattr(value, "value"), (str, int, float)):  # an Enum
        return value.value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def annotated_yaml(compiled) -> str:
    """The resolved config as YAML, each scalar and each empty or interpolated container with its origin as a
    trailing comment, and under each validated component's config the fields its class fills in (not written,
    under their name or alias, and not required) with the comment ``default``."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    defaults = _defaults(compiled)

    def build(value: Any, path: Path) -> Any:
        if isinstance(value, dict):
            node = CommentedMap()
            for key, item in value.items():
                node[key] = build(item, path + (key,))
                if not isinstance(item, (dict, list)) or not item:
                    node.yaml_add_eol_comment(printable(origin_of(compiled, path + (key,))), key)
                elif path + (key,) in compiled.document.provenance:
                    node.yaml_add_eol_comment(printable(origin_of(compiled, path + (key,))), key)
            for key, item in defaults.get(path, {}).items():
                node[key] = _plain(item)
                node.yaml_add_eol_comment("default", key)
            if "config" not in value and path + ("config",) in defaults:  # a component written without config
                node["config"] = build({}, path + ("config",))
            return node
        if isinstance(value, list):
            seq = CommentedSeq()
            for index, item in enumerate(value):
                seq.append(build(item, path + (index,)))
                if not isinstance(item, (dict, list)):
                    seq.yaml_add_eol_comment(printable(origin_of(compiled, path + (index,))), index)
            return seq
        return value

    yaml = YAML(typ="rt")
    yaml.default_flow_style = False
    yaml.width = 120
    terminal_safe(yaml)
    stream = io.StringIO()
    yaml.dump(build(compiled.document.values, ()), stream)
    return escape_bidi(stream.getvalue())
