"""Stage 2: resolve ``${a.b.c}`` paths and ``${resolver:arg}`` calls against the Document.

A whole-string interpolation keeps the value's type; inside a longer string it becomes text. An
interpolation that lands on a component node becomes a reference to it (one shared object), never a copy.
"""

from __future__ import annotations

import copy
import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any, Callable

from modalities.config.diagnostics import PATH_CHARS, ConfigError, Diagnostic, cut, did_you_mean
from modalities.config.limits import MAX_DEPTH, MAX_INTERPOLATION_CHAIN, MAX_STRING_CHARS, MAX_VALUES
from modalities.config.load import Document
from modalities.config.spans import Path, dotted, list_index, mapping_key

INTERPOLATION = re.compile(r"(?<!\\)\$\{([^${}]*)\}")
REFERENCE_PASS_TYPE = "BY_REFERENCE"


@dataclass
class ResolverContext:
    config_path: FilePath | None
    experiments_root: FilePath | None
    experiment_id: str | None
    last_checkpoint_info: FilePath | None = None  # the warm start's last_checkpoint_info.json
    # A composed config: the folder of the file that wrote the value at a path (None: config_path's folder).
    folder_of: Callable[[Path], FilePath | None] | None = None
    at: Path = ()  # the path whose value is being resolved, while a resolver runs


Resolver = Callable[[str, ResolverContext], Any]
_RESOLVERS: dict[str, Resolver] = {}


class ResolverError(Exception):
    """Raised by a resolver for a bad argument; the message becomes a diagnostic at the interpolation."""


def register_resolver(name: str, resolver: Resolver, *, replace: bool = False) -> None:
    """Make ``${name:arg}`` call ``resolver(arg, context)`` (``arg`` stripped; ``context.at`` the path being
    resolved). A name already registered raises ValueError unless ``replace``."""
    if name in _RESOLVERS and not replace:
        raise ValueError(f"resolver '{name}' is already registered; pass replace=True to replace it")
    _RESOLVERS[name] = resolver




def _cuda_env(arg: str, ctx: ResolverContext) -> int:
    defaults = {"LOCAL_RANK": 0, "RANK": 0, "WORLD_SIZE": 1}
    if arg not in defaults:
        raise ResolverError(f"cuda_env knows {', '.join(defaults)}, not '{arg}'")
    return int(os.environ.get(arg, defaults[arg]))


def _modalities_env(arg: str, ctx: ResolverContext) -> Any:
    if arg == "config_file_path":
        return str(ctx.config_path) if ctx.config_path else None
    if arg == "config_folder_path":
        folder = ctx.folder_of(ctx.at) if ctx.folder_of else None
        return str(folder) if folder else (str(ctx.config_path.parent) if ctx.config_path else None)
    if arg == "experiments_root_path":
        return str(ctx.experiments_root) if ctx.experiments_root else None
    if arg == "experiment_id":
        return ctx.experiment_id
    raise ResolverError(
        "modalities_env knows config_file_path, config_folder_path, experiments_root_path, experiment_id, "
        f"not '{arg}'"
    )


def _node_env(arg: str, ctx: ResolverContext) -> int:
    if arg != "num_cpus":
        raise ResolverError(f"node_env knows num_cpus, not '{arg}'")
    return os.cpu_count() or 1


def _env(arg: str, ctx: ResolverContext) -> Any:
    name, sep, default = arg.partition(",")
    name = name.strip()
    if name in os.environ:
        return os.environ[name]
    if sep:
        return _parse_scalar(default)
    raise ResolverError(f"environment variable '{name}' is not set and no default is given (${{env:{name},DEFAULT}})")


def _warmstart_env(arg: str, ctx: ResolverContext) -> Any:
    """``${warmstart_env:checkpoint_paths}``: the paths of the checkpoint to continue from, read from the
    last_checkpoint_info.json that checkpoint saving writes (given with --last-checkpoint-info)."""
    import json

    if arg != "checkpoint_paths":
        raise ResolverError(f"warmstart_env knows checkpoint_paths, not '{arg}'")
    info = ctx.last_checkpoint_info
    if info is None:
        raise ResolverError(
            "this config continues from a checkpoint: give its last_checkpoint_info.json with "
            "--last-checkpoint-info FILE (or `modalities warmstart CONFIG --last_checkpoint_info_file_path FILE`)"
        )
    try:
        paths = json.loads(FilePath(info).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ResolverError(f"cannot read the last checkpoint info {info}: {e}") from None
    if not isinstance(paths, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in paths.items()):
        raise ResolverError(f"{info} must be a JSON object of checkpoint paths, e.g. {{\"checkpoint_folder_path\": ...}}")
    return paths


for _name, _fn in (
    ("cuda_env", _cuda_env),
    ("modalities_env", _modalities_env),
    ("node_env", _node_env),
    ("env", _env),
    ("warmstart_env", _warmstart_env),
):
    register_resolver(_name, _fn)


def resolver_names() -> list[str]:
    """The names ``${name:arg}`` may call, sorted."""
    return sorted([*_RESOLVERS, *_DOCUMENT_RESOLVERS])


def absolute_parts(expression: str, at: Path) -> list:
    """The keys a ``${path}`` written at ``at`` follows: ``a.b`` -> [a, b]; relative paths made absolute: ``.x``
    is a sibling of the value at ``at``, each further dot one level up, more dots than levels the top level."""
    return _Resolver._absolute_parts(expression, at)


def is_component_node(value: Any) -> bool:
    """A mapping with a component_key."""
    return isinstance(value, dict) and "component_key" in value


def is_reference_node(value: Any) -> bool:
    """A mapping with an instance_key and no component_key."""
    return isinstance(value, dict) and "instance_key" in value and "component_key" not in value


def reference_to(path: Path) -> dict:
    return {"instance_key": dotted(path), "pass_type": REFERENCE_PASS_TYPE}


_UNRESOLVED = object()


class _Resolver:
    def __init__(self, document: Document, context: ResolverContext):
        self.document = document
        self.context = context
        self.diagnostics: list[Diagnostic] = []
        self.unresolved_paths: set[Path] = set()
        self._done: dict[Path, Any] = {}
        self._stack: list[Path] = []
        # Sizes (values) and depths of resolved values by path, and what interpolation has copied so far: the
        # limits stop a config whose ${...} fan out before it takes the memory (see config/limits.py).
        self._size: dict[Path, int] = {}
        self._depth: dict[Path, int] = {}
        self._copied_values = 0
        self._interpolated_chars = 0
        # path -> the interpolations its value came from: (expression, the path it read or None for a resolver)
        self.provenance: dict[Path, list[tuple[str, Path | None]]] = {}
        self._last_target: Path | None = None
        self._chain = 0  # interpolations being resolved inside one another (see _follow)

    def run(self) -> Any:
        return self.resolve_path(())

    def resolve_path(self, path: Path) -> Any:
        if path in self._done:
            return self._done[path]
        if path in self._stack:
            return self._cycle(path)
        self._stack.append(path)
        try:
            value = self._lookup_raw(path)
            if isinstance(value, dict):
                result: Any = {k: self.resolve_path(path + (k,)) for k in value}
                children = [path + (k,) for k in value]
            elif isinstance(value, list):
                result = [self.resolve_path(path + (i,)) for i in range(len(value))]
                children = [path + (i,) for i in range(len(value))]
            elif isinstance(value, str) and "${" in value:
                result = self._interpolate(value, path)
                children = None
            else:
                result = value.replace("\\${", "${") if isinstance(value, str) else value
                children = []
        finally:
            self._stack.pop()
        if children is None:  # an interpolation: a copied container was measured when it was copied
            size, depth = _measure(result) if isinstance(result, (dict, list)) else (1, 0)
        else:
            size = 1 + sum(self._size.get(child, 1) for child in children)
            depth = (1 + max((self._depth.get(child, 0) for child in children), default=0)) if children else 0
            if not isinstance(result, (dict, list)):
                size = 1
        self._size[path], self._depth[path] = size, depth
        if depth > MAX_DEPTH:
            self._fatal(path, f"through ${{...}} interpolation the config is nested more than {MAX_DEPTH} levels deep")
        self._done[path] = result
        return result

    def _fatal(self, path: Path, message: str) -> None:
        """A limit is exceeded: stop resolving (going on could take all memory)."""
        raise ConfigError(
            [
                Diagnostic(
                    message,
                    span=self.document.source_map.value(path),
                    path=path,
                    hint="each ${...} of a mapping or list is a copy of it; see modalities/config/limits.py",
                    code="limit",
                )
            ]
        )

    def _charge_copy(self, size: int, at: Path) -> None:
        self._copied_values += size
        if self._copied_values > MAX_VALUES:
            self._fatal(at, f"${{...}} interpolations copy more than {MAX_VALUES:,} values in all")

    def _lookup_raw(self, path: Path) -> Any:
        node = self.document.values
        for part in path:
            node = node[part]
        return node

    def _cycle(self, path: Path) -> Any:
        chain = self._stack[self._stack.index(path) :] + [path]
        links = [f"{dotted(p) or '<root>'} ({self.document.source_map.value(p)})" for p in chain]
        self.diagnostics.append(
            Diagnostic(
                "interpolation cycle: " + " -> ".join(links),
                span=self.document.source_map.value(chain[0]),
                path=chain[0],
                hint="one of these values must be given directly instead of through ${...}",
                code="interpolation-cycle",
            )
        )
        self.unresolved_paths.add(path)
        return _UNRESOLVED

    def _interpolate(self, written: str, path: Path) -> Any:
        """The value of a string holding ``${...}``. ``${oc.decode:${oc.env:X}}``: the inner interpolations become
        text of the outer one first, one level of nesting per pass; each pass is linear in the text, and the
        levels are bounded. Left as written (and the path marked unresolved) where it cannot be resolved."""
        text = written
        for _ in range(MAX_DEPTH + 1):
            matches = list(INTERPOLATION.finditer(text))
            if not matches:
                return text.replace("\\${", "${")
            nested = _nested_matches(text, matches)
            if not nested:
                value = self._join(text, matches, path)
                return written if value is _UNRESOLVED else value
            text = self._substitute(text, nested, path)
            if text is _UNRESOLVED:
                return written
        self._error(path, f"${{...}} nested more than {MAX_DEPTH} levels deep", hint="see modalities/config/limits.py")
        self.unresolved_paths.add(path)
        return written

    def _substitute(self, text: str, matches: list, path: Path) -> Any:
        """``text`` with each of ``matches`` (interpolations inside another) replaced by its value as text."""
        pieces, last, length = [], 0, 0
        for match in matches:
            value = self._evaluate(match.group(1).strip(), path)
            if value is _UNRESOLVED or is_reference_node(value) or isinstance(value, (dict, list)):
                if value is not _UNRESOLVED:
                    self._error(path, f"'${{{cut(match.group(1), PATH_CHARS)}}}' is not a scalar and cannot be a "
                                "resolver argument")
                self.unresolved_paths.add(path)
                return _UNRESOLVED
            pieces += [text[last : match.start()], _as_text(value)]
            length += len(pieces[-1]) + len(pieces[-2])
            last = match.end()
            if length > MAX_STRING_CHARS:
                self._too_long(path)
                return _UNRESOLVED
        if length + len(text) - last > MAX_STRING_CHARS:
            self._too_long(path)
            return _UNRESOLVED
        return "".join(pieces) + text[last:]

    def _join(self, text: str, matches: list, path: Path) -> Any:
        """The value of ``text`` whose ``matches`` nest in no other: the one interpolation's value (of any type)
        when it is the whole text, else the text with each value put in."""
        if len(matches) == 1 and matches[0].span() == (0, len(text)):
            value = self._evaluate(matches[0].group(1).strip(), path)
            if value is _UNRESOLVED:
                self.unresolved_paths.add(path)
            return value
        pieces, last, length = [], 0, 0
        for match in matches:
            value = self._evaluate(match.group(1).strip(), path)
            if value is _UNRESOLVED:
                self.unresolved_paths.add(path)
                return _UNRESOLVED
            if is_reference_node(value) or isinstance(value, (dict, list)):
                self._error(
                    path,
                    f"'${{{cut(match.group(1), PATH_CHARS)}}}' is a "
                    f"{'component' if is_reference_node(value) else 'mapping or list'} and cannot be part of a longer "
                    "string",
                    hint="interpolate it as the whole value, or point at a scalar",
                )
                self.unresolved_paths.add(path)
                return _UNRESOLVED
            pieces += [text[last : match.start()], _as_text(value)]
            length += len(pieces[-1]) + len(pieces[-2])
            if length > MAX_STRING_CHARS:
                self._too_long(path)
                return _UNRESOLVED
            last = match.end()
        pieces.append(text[last:])
        length += len(pieces[-1])
        if length > MAX_STRING_CHARS:
            self._too_long(path)
            return _UNRESOLVED
        self._interpolated_chars += length
        if self._interpolated_chars > 16 * MAX_STRING_CHARS:
            self._fatal(path, f"${{...}} interpolations make more than {16 * MAX_STRING_CHARS:,} characters in all")
        return "".join(pieces).replace("\\${", "${")

    def _too_long(self, path: Path) -> None:
        self._error(
            path,
            f"this interpolation makes a string of more than {MAX_STRING_CHARS:,} characters",
            hint="see modalities/config/limits.py",
        )
        self.unresolved_paths.add(path)

    def _evaluate(self, expression: str, at: Path) -> Any:
        self._last_target = None
        value = self._evaluate_expression(expression, at)
        if value is not _UNRESOLVED:
            self.provenance.setdefault(at, []).append((expression, self._last_target))
        return value

    def _evaluate_expression(self, expression: str, at: Path) -> Any:
        name, sep, arg = expression.partition(":")
        name = name.strip()
        if sep and name in _DOCUMENT_RESOLVERS:
            try:
                return _DOCUMENT_RESOLVERS[name](self, arg.strip(), at, expression)
            except ResolverError as e:
                self._error(at, f"${{{expression}}}: {e}")
                return _UNRESOLVED
        if sep and name in _RESOLVERS:
            self.context.at = at
            try:
                return _utf8_only(_RESOLVERS[name](arg.strip(), self.context))
            except ResolverError as e:
                self._error(at, f"${{{expression}}}: {e}")
                return _UNRESOLVED
            except Exception as e:  # a user resolver's bug, shown at the interpolation that called it
                self._error(at, f"${{{expression}}}: resolver '{name}' raised {type(e).__name__}: {e}")
                return _UNRESOLVED
        if sep:
            known = resolver_names()
            self._error(
                at,
                f"unknown resolver '{name}' in ${{{expression}}}",
                hint=did_you_mean(name, known) or f"known resolvers: {', '.join(known)}",
            )
            return _UNRESOLVED
        return self._evaluate_path(expression, at)

    def _select(self, arg: str, at: Path, expression: str) -> Any:
        """``${oc.select:path,default}``: the value at path, or the default where there is none."""
        key, has_default, default = _split_argument(arg)
        exists = self._path_exists(key, at)
        if exists is None:
            return _UNRESOLVED
        if not exists:
            if has_default:
                return _parse_scalar(default)
            self._error(at, f"${{{expression}}}: '{key}' does not exist and no default is given")
            return _UNRESOLVED
        return self._evaluate_path(key, at)

    def _decode(self, arg: str, at: Path, expression: str) -> Any:
        """``${oc.decode:text}``: the text read as a YAML value (``'3'`` -> 3, ``'[1, 2]'`` -> a list)."""
        from modalities.config.overrides import parse_override_value

        try:
            return parse_override_value(_unquote(arg))
        except ConfigError as e:
            self._error(at, f"${{{expression}}}: " + "; ".join(d.message for d in e.diagnostics))
            return _UNRESOLVED

    def _path_exists(self, expression: str, at: Path) -> bool | None:
        """Whether the path names a value, looked up in resolved values as OmegaConf's oc.select does (an
        interpolation on the way is resolved first); None when a value on the way cannot be resolved (its own
        error says why)."""
        node: Any = self.document.values
        target: list = []
        through_interpolation = False
        for part in self._absolute_parts(expression, at):
            if not through_interpolation and isinstance(node, str) and "${" in node:
                node = self._follow(tuple(target), at)
                if node is _UNRESOLVED or tuple(target) in self.unresolved_paths:
                    return None
                through_interpolation = True
            if isinstance(node, dict) and mapping_key(node, str(part)) is not None:
                key: Any = mapping_key(node, str(part))
            elif isinstance(node, list) and list_index(part, len(node)) is not None:
                key = list_index(part, len(node))
            else:
                return False
            target.append(key)
            node = node[key]
        return True

    @staticmethod
    def _absolute_parts(expression: str, at: Path) -> list:
        """``a.b`` -> [a, b]; OmegaConf's relative ``.x`` (a sibling of the value at ``at``) and ``..x`` (one
        level further up) -> the absolute path."""
        if not expression.startswith("."):
            return expression.split(".")
        dots = len(expression) - len(expression.lstrip("."))
        base = list(at[: max(len(at) - dots, 0)])
        rest = expression[dots:]
        return base + (rest.split(".") if rest else [])

    def _evaluate_path(self, expression: str, at: Path) -> Any:
        target: list = []
        node = self.document.values
        through_interpolation = False  # past a node that was itself an interpolation: values are resolved
        for part in self._absolute_parts(expression, at):
            part = str(part)
            if not through_interpolation and isinstance(node, str) and "${" in node:
                node = self._follow(tuple(target), at)
                if node is _UNRESOLVED or tuple(target) in self.unresolved_paths:
                    return _UNRESOLVED  # already reported where it failed
                through_interpolation = True
            if isinstance(node, dict) and mapping_key(node, part) is not None:
                key: Any = mapping_key(node, part)
            elif isinstance(node, list) and list_index(part, len(node)) is not None:
                key = list_index(part, len(node))
            else:
                where = dotted(target) or "the top level"
                hint = did_you_mean(part, node) if isinstance(node, dict) else None
                self._error(at, f"${{{expression}}}: '{part}' does not exist in {where}", hint=hint)
                return _UNRESOLVED
            target.append(key)
            node = node[key]
        target_path = tuple(target)
        self._last_target = target_path
        if through_interpolation:
            value = node  # part of an already resolved value (its components are references already)
        elif is_component_node(node):
            return reference_to(target_path)
        else:
            value = self._follow(target_path, at)
            if value is _UNRESOLVED or target_path in self.unresolved_paths:
                return _UNRESOLVED
            self._last_target = target_path  # the path read, not the last one its own resolution read
        if isinstance(value, (dict, list)):
            size = _measure(value)[0] if through_interpolation else self._size.get(target_path, 1)
            self._charge_copy(size, at)
            self.document.source_map.copy_subtree(target_path, at, value)
            return copy.deepcopy(value) if through_interpolation else _share_components(value, target_path)
        return value

    def _follow(self, path: Path, at: Path) -> Any:
        """The resolved value at ``path``, which the interpolation at ``at`` reads: one link of a chain of
        interpolations, each resolved inside the one before (a chain is bounded, so resolving never runs out of
        stack)."""
        if self._chain >= MAX_INTERPOLATION_CHAIN:
            self._error(at, f"${{...}} chained through more than {MAX_INTERPOLATION_CHAIN} interpolations, each "
                        "reading the next", hint="give one of the values in the chain directly (see "
                        "modalities/config/limits.py)")
            self.unresolved_paths.add(at)
            return _UNRESOLVED
        self._chain += 1
        try:
            return self.resolve_path(path)
        finally:
            self._chain -= 1

    def _error(self, path: Path, message: str, hint: str | None = None) -> None:
        self.diagnostics.append(
            Diagnostic(message, span=self.document.source_map.value(path), path=path, hint=hint, code="interpolation")
        )


def _measure(value: Any) -> tuple[int, int]:
    """(values, nesting depth) of a plain value, without recursion."""
    size, depth = 0, 0
    pending = [(value, 0)]
    while pending:
        item, level = pending.pop()
        size += 1
        if isinstance(item, dict):
            depth = max(depth, level + 1)
            pending.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            depth = max(depth, level + 1)
            pending.extend((v, level + 1) for v in item)
    return size, depth


_BRACES = re.compile(r"\$\{|\}")


def _nested_matches(text: str, matches: list) -> list:
    """The ``matches`` that lie inside another, unclosed ``${`` (an escaped ``\\${`` opens none), found in one
    pass over the text."""
    starts = {match.start(): match for match in matches}
    nested, depth = [], 0
    for brace in _BRACES.finditer(text):
        at = brace.start()
        if brace.group() == "}":
            depth = max(depth - 1, 0)
        elif at == 0 or text[at - 1] != "\\":
            if depth and at in starts:
                nested.append(starts[at])
            depth += 1
    return nested


_UNDECODABLE = re.compile("[\ud800-\udfff]")


def _utf8_only(value: Any) -> Any:
    """A resolver's value, if its text is UTF-8. An environment variable, a file name or a JSON file holding bytes
    that are not UTF-8 reaches Python as lone surrogates, which no config value may hold: what reads it later
    (a message, a YAML or JSON writer, a tokenizer) could not."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            bad = _UNDECODABLE.search(item)
            if bad is not None:
                byte = ord(bad.group()) - 0xDC00
                raise ResolverError(
                    f"its value is not UTF-8 text (character {bad.start() + 1} stands for the byte 0x{byte:02x} "
                    "that cannot be decoded); config values are UTF-8: link to such a file under a UTF-8 name"
                    if 0x80 <= byte <= 0xFF else "its value holds a lone surrogate, which is not text"
                )
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
    return value


def _as_text(value: Any) -> str:
    # OmegaConf's string form: null becomes "None", true "True".
    return str(value)


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _split_argument(arg: str) -> tuple[str, bool, str]:
    """``name,default`` -> (name, True, default); the default may itself contain commas."""
    name, sep, default = arg.partition(",")
    return name.strip(), bool(sep), default.strip()


def _parse_scalar(text: str) -> Any:
    """A resolver's default: quoted text as is, else read as YAML. A string of thousands of interpolations
    repeats its defaults: each text is read once (a copy of a list or mapping is handed out)."""
    value = _read_default(text)
    if isinstance(value, ConfigError):
        raise ResolverError("the default " + "; ".join(d.message for d in value.diagnostics))
    return copy.deepcopy(value) if isinstance(value, (dict, list)) else value


@functools.lru_cache(maxsize=1024)
def _read_default(text: str) -> Any:
    from modalities.config.overrides import parse_override_value

    unquoted = _unquote(text)
    if unquoted != text.strip():
        return unquoted
    try:
        return parse_override_value(text)
    except ConfigError as e:
        return e


def _oc_env(arg: str, ctx: ResolverContext) -> Any:
    """OmegaConf's ``${oc.env:NAME}`` / ``${oc.env:NAME,default}``: the variable's text, or the default."""
    name, has_default, default = _split_argument(arg)
    if name in os.environ:
        return os.environ[name]
    if has_default:
        return _parse_scalar(default)
    raise ResolverError(f"environment variable '{name}' is not set and no default is given (${{oc.env:{name},DEFAULT}})")


register_resolver("oc.env", _oc_env)

# Resolvers that read the document itself (OmegaConf's oc.select and oc.decode).
_DOCUMENT_RESOLVERS: dict[str, Callable[[_Resolver, str, Path, str], Any]] = {
    "oc.select": _Resolver._select,
    "oc.decode": _Resolver._decode,
}


def _share_components(value: Any, path: Path) -> Any:
    """A copy of a resolved subtree in which every component node becomes a reference to the original."""
    if is_component_node(value):
        return reference_to(path)
    if isinstance(value, dict):
        return {k: _share_components(v, path + (k,)) for k, v in value.items()}
    if isinstance(value, list):
        return [_share_components(v, path + (i,)) for i, v in enumerate(value)]
    return value


@dataclass
class ResolvedDocument(Document):
    unresolved_paths: frozenset = frozenset()
    # path -> [(expression, the path it read, or None for a resolver such as cuda_env)]
    provenance: dict = field(default_factory=dict)


def resolve_document(document: Document, context: ResolverContext) -> tuple[ResolvedDocument, list[Diagnostic]]:
    """Resolve every interpolation, as OmegaConf would: a ``${path}`` that is the whole value gives the value with
    its type (a copy of a mapping or list, with its positions; a component becomes a reference to it); inside a
    longer string each becomes its ``str()`` (null "None", true "True"); a backslash before ``${`` keeps it as
    literal text; a list index may count from the end (-1 the last, -len the first). Values that cannot be resolved
    (a path that does not exist, a cycle, an unknown resolver, a resolver's error, a mapping or component inside
    text, a string longer than MAX_STRING_CHARS, a chain longer than MAX_INTERPOLATION_CHAIN, ``${`` nested deeper
    than MAX_DEPTH) are left as written, listed in ``unresolved_paths`` and reported once each, where they stand (a
    value that reads one is not reported again), so later stages can go on reporting other errors without piling up
    on these. Fan-out past a limit (more than MAX_VALUES values copied, 16 x MAX_STRING_CHARS characters made,
    MAX_DEPTH levels of nesting) raises ConfigError: going on could take all memory. ``provenance``: for each
    interpolated value, its expressions and the path each read (None for a resolver)."""
    resolver = _Resolver(document, context)
    values = resolver.run()
    resolved = ResolvedDocument(
        values=values,
        source_map=document.source_map,
        config_path=document.config_path,
        unresolved_paths=frozenset(resolver.unresolved_paths),
        provenance=resolver.provenance,
        files=document.files,
    )
    return resolved, resolver.diagnostics
