"""Stage 1: YAML text -> Document (plain values + a SourceMap with the position of every key and value).

Safe loading only: the YAML is composed into nodes and turned into plain values here; a tag that would
construct a Python object is an error, never executed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

from modalities.config.diagnostics import ConfigError, Diagnostic
from modalities.config.spans import Path, SourceMap, Span

_YAML_TAG_PREFIX = "tag:yaml.org,2002:"
_PLAIN_TAGS = {"str", "int", "float", "bool", "null", "map", "seq", "timestamp", "merge", "binary"}


@dataclass
class Document:
    """A config as plain Python values, with positions kept apart in ``source_map``."""

    values: Any
    source_map: SourceMap = field(default_factory=SourceMap)
    config_path: FilePath | None = None


def load_document(path: str | FilePath) -> Document:
    path = FilePath(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Diagnostic(f"config file not found: {path}", hint="check the path")]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([Diagnostic(f"cannot read config file {path}: {e}")]) from None
    document = load_text(text, str(path))
    document.config_path = path.resolve()
    return document


def load_text(text: str, filename: str = "<string>") -> Document:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="safe")  # libyaml's parser when ruamel.yaml.clib is installed: several times faster
    try:
        root = yaml.compose(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        span = _mark_span(filename, mark) if mark else None
        message = " ".join(filter(None, [e.context, e.problem])) or str(e)
        raise ConfigError([Diagnostic(f"invalid YAML: {message}", span=span, code="yaml-syntax")]) from None
    except YAMLError as e:
        raise ConfigError([Diagnostic(f"invalid YAML in {filename}: {e}", code="yaml-syntax")]) from None
    converter = _NodeConverter(filename, yaml.constructor)
    values = converter.convert(root, ()) if root is not None else {}
    if converter.diagnostics:
        raise ConfigError(converter.diagnostics)
    if not isinstance(values, dict):
        span = converter.source_map.values.get(())
        raise ConfigError(
            [Diagnostic("a config file must be a mapping of names to components", span=span, code="not-a-mapping")]
        )
    return Document(values=values, source_map=converter.source_map)


def _mark_span(filename: str, mark: Any, end: Any = None) -> Span:
    end = end or mark
    return Span(filename, mark.line + 1, mark.column + 1, end.line + 1, end.column + 1)


def _tag_name(node: Any) -> str:
    tag = node.tag
    return str(getattr(tag, "value", tag) or "")


class _NodeConverter:
    def __init__(self, filename: str, constructor: Any):
        self.filename = filename
        self.source_map = SourceMap()
        self.diagnostics: list[Diagnostic] = []
        self._constructor = constructor
        self._active: set[int] = set()  # nodes being converted: an alias back into one of them is a cycle

    def span(self, node: Any) -> Span:
        return _mark_span(self.filename, node.start_mark, node.end_mark)

    def convert(self, node: Any, path: Path) -> Any:
        from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

        self.source_map.values[path] = self.span(node)
        tag = _tag_name(node)
        if not self._tag_allowed(tag):
            self.diagnostics.append(
                Diagnostic(
                    f"YAML tag '{tag.replace(_YAML_TAG_PREFIX, '!!')}' is not allowed",
                    span=self.span(node),
                    path=path,
                    hint="configs are plain data: remove the tag (tags that construct Python objects are never run)",
                    code="yaml-tag",
                )
            )
            return None
        if id(node) in self._active:
            self.diagnostics.append(
                Diagnostic("a YAML alias refers to a node that contains it", span=self.span(node), path=path)
            )
            return None
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        self._active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.convert(item, path + (i,)) for i, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
        finally:
            self._active.discard(id(node))
        return None

    def _tag_allowed(self, tag: str) -> bool:
        return tag.startswith(_YAML_TAG_PREFIX) and tag[len(_YAML_TAG_PREFIX) :] in _PLAIN_TAGS

    def _scalar(self, node: Any) -> Any:
        tag = _tag_name(node)[len(_YAML_TAG_PREFIX) :]
        if tag == "str":
            return node.value
        if tag == "timestamp":
            return node.value  # dates stay text: configs feed JSON-like values to pydantic
        return self._constructor.construct_object(node, deep=True)

    def _mapping(self, node: Any, path: Path) -> dict:
        result: dict[Any, Any] = {}
        key_nodes: dict[Any, Any] = {}
        merged: list[tuple[Any, Any]] = []
        for key_node, value_node in node.value:
            if _tag_name(key_node) == _YAML_TAG_PREFIX + "merge":
                merged.extend(self._merge_sources(value_node, path))
                continue
            if _tag_name(key_node) not in (_YAML_TAG_PREFIX + "str", _YAML_TAG_PREFIX + "int"):
                self.diagnostics.append(
                    Diagnostic("mapping keys must be plain strings", span=self.span(key_node), path=path)
                )
                continue
            key = self._scalar(key_node)
            if key in key_nodes:
                first = self.span(key_nodes[key])
                self.diagnostics.append(
                    Diagnostic(
                        f"duplicate key '{key}' (first defined at line {first.line})",
                        span=self.span(key_node),
                        path=path + (key,),
                        hint="remove one of them; YAML would silently keep only the last",
                        code="duplicate-key",
                    )
                )
                continue
            key_nodes[key] = key_node
            self.source_map.keys[path + (key,)] = self.span(key_node)
            result[key] = self.convert(value_node, path + (key,))
        # Keys from `<<: *anchor` merges fill in only what the mapping does not set itself.
        for key_node, value_node in merged:
            key = self._scalar(key_node)
            if key not in result:
                self.source_map.keys[path + (key,)] = self.span(key_node)
                result[key] = self.convert(value_node, path + (key,))
        return result

    def _merge_sources(self, value_node: Any, path: Path) -> list[tuple[Any, Any]]:
        from ruamel.yaml.nodes import MappingNode, SequenceNode

        sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
        pairs: list[tuple[Any, Any]] = []
        for source in sources:
            if not isinstance(source, MappingNode):
                self.diagnostics.append(
                    Diagnostic("'<<' merges only mappings", span=self.span(source), path=path, code="yaml-merge")
                )
                continue
            pairs.extend(source.value)
        return pairs
