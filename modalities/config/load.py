"""Stage 1: YAML text -> Document (plain values + a SourceMap with the position of every key and value).

Safe loading only: the YAML is composed into nodes and turned into plain values here; a tag that would
construct a Python object is an error, never executed. Plain scalars are typed by YAML 1.1's rules as the
reference's OmegaConf.load types them (``010`` is 8, ``on`` is true; config/yaml11.py), not by the parser's 1.2.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

from modalities.config.diagnostics import WARNING, ConfigError, Diagnostic
from modalities.config.limits import MAX_CONFIG_BYTES, MAX_DEPTH, MAX_INT_DIGITS, MAX_VALUES
from modalities.config.spans import Path, SourceMap, Span
from modalities.config.yaml11 import construct, plain_tag, surprise

_YAML_TAG_PREFIX = "tag:yaml.org,2002:"
# The tags of a file merged onto others (config/compose.py): `key: !delete` removes an inherited key,
# `key: !replace {...}` sets a mapping whole instead of merging it key by key.
DELETE_TAG = "!delete"
REPLACE_TAG = "!replace"
_PLAIN_TAGS = {"str", "int", "float", "bool", "null", "map", "seq", "timestamp", "merge", "binary", "value"}
# the scalars YAML 1.1 types itself (config/yaml11.py); the others (binary, timestamp) are read by ruamel
_YAML11_SCALARS = {"int", "float", "bool", "null"}


@dataclass
class Document:
    """A config as plain Python values, with positions kept apart in ``source_map``."""

    values: Any
    source_map: SourceMap = field(default_factory=SourceMap)
    config_path: FilePath | None = None
    # path -> DELETE_TAG or REPLACE_TAG where the file wrote one (read with merge_tags; compose.py applies them)
    marks: dict = field(default_factory=dict)
    # the files a composed config was read from (compose.SourceFile), in the order they were merged
    files: list = field(default_factory=list)
    warnings: list = field(default_factory=list)  # found while composing (Diagnostics), reported with the rest


# The texts of files that replace what is on disk, by resolved path: an editor's unsaved buffers (modalities lsp).
Sources = Mapping[FilePath, str]


def read_config_text(path: FilePath, sources: Sources | None = None) -> str:
    """The text of a config file: the one ``sources`` holds for it (by resolved path), else the file's. Every
    config file the compiler reads goes through here (a loader that composes a config from several files reads
    each of them here, with the ``sources`` it was given), so a check in an editor sees the unsaved text of
    each file it reads. Raises ConfigError for a file that cannot be read (code ``config-file``), is over the
    size limit, or whose text is not UTF-8 (positioned at the first byte that is not)."""
    text = sources.get(path.resolve()) if sources else None
    if text is not None:
        _check_size(path, len(text.encode("utf-8", "surrogatepass")))
        return text
    try:
        _check_size(path, path.stat().st_size)
        data = path.read_bytes()
    except FileNotFoundError:
        missing = Diagnostic(f"config file not found: {path}", hint="check the path", code="config-file")
        raise ConfigError([missing]) from None
    except OSError as e:
        unreadable = Diagnostic(f"cannot read config file {path}: {e.strerror or e}", code="config-file")
        raise ConfigError([unreadable]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError([not_utf8(str(path), data, e)]) from None


def _check_size(path: FilePath, size: int) -> None:
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            [Diagnostic(f"{path} is {size:,} bytes; a config may be at most {MAX_CONFIG_BYTES:,}", code="limit")]
        )


def load_document(path: str | FilePath, sources: Sources | None = None) -> Document:
    """A config file as a Document (see read_config_text for the errors)."""
    path = FilePath(path)
    document = load_text(read_config_text(path, sources), str(path))
    document.config_path = path.resolve()
    return document


def not_utf8(filename: str, data: bytes, error: UnicodeDecodeError) -> Diagnostic:
    """The error for ``data`` that is not UTF-8, at its first undecodable byte: line and column (1-based, a
    character of several bytes one column) and the text of that line (the byte as a lone surrogate)."""
    line_start = data.rfind(b"\n", 0, error.start) + 1
    line = data.count(b"\n", 0, error.start) + 1
    col = len(data[line_start : error.start].decode("utf-8", "replace")) + 1
    line_end = data.find(b"\n", error.start)
    text = data[line_start : line_end if line_end >= 0 else len(data)].decode("utf-8", "surrogateescape")
    return Diagnostic(
        f"the file is not UTF-8 text: byte 0x{data[error.start]:02x} cannot be decoded ({error.reason})",
        span=Span(filename, line, col, line, col + 1, text=text),
        hint="a config is UTF-8: save it as UTF-8 (a value that is a file name which is not UTF-8 cannot be given "
        "in a config; rename the file or link to it under a UTF-8 name)",
        code="config-file",
    )


def load_text(text: str, filename: str = "<string>", *, merge_tags: bool = False, values_before: int = 0) -> Document:
    """The Document of a config's text: an empty text (or only comments) is ``{}``; a top level that is not a
    mapping (a list, a scalar, ``null``) raises ConfigError ``not-a-mapping``. Every mistake of the text is
    raised at once, each positioned in ``filename``: YAML syntax, tags other than the plain ones, duplicate keys
    (the first kept), keys that are not strings or integers, ``<<`` of something but mappings, more than one
    document, aliases into their own anchor, and the limits (values, depth, integer digits; after aliases are
    expanded). ``merge_tags``: accept ``!delete`` (no value; the value is None) and ``!replace`` (recorded in
    ``marks``); without it they are refused like any other tag. ``values_before``: values already read from the
    other files of a composed config (they count towards the same MAX_VALUES). Plain values that YAML 1.1 reads
    unlike what they seem (``010`` octal, ``1:30`` base 60) are read so and warned of in ``warnings``."""
    root = _compose_checked(text, filename, values_before=values_before)
    converter = _NodeConverter(filename, merge_tags)
    values = converter.convert(root, ()) if root is not None else {}
    if converter.diagnostics:
        raise ConfigError(converter.diagnostics)

    if not isinstance(values, dict):
        span = converter.source_map.values.get(())
        raise ConfigError(
            [Diagnostic("a config file must be a mapping of names to components", span=span, code="not-a-mapping")]
        )
    return Document(values=values, source_map=converter.source_map, marks=converter.marks, warnings=converter.warnings)


def load_value(text: str, filename: str, span: Span | None = None, *, yaml_version: str = "1.1") -> Any:
    """One YAML value (a ``--set`` value, an ``oc.decode`` argument) as plain data, within the same limits as a
    file (a text longer than MAX_CONFIG_BYTES characters is refused unread); None for an empty text. Raises
    ConfigError (every diagnostic positioned at ``span`` when given) for anything but plain, bounded data.
    ``yaml_version``: "1.1" types plain scalars as a config file's (OmegaConf.from_dotlist reads a value so);
    "1.2" as the parser does (``on`` and ``1:30`` text, ``010`` ten)."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError([Diagnostic(f"a value of {len(text):,} characters is too long", span=span, code="limit")])
    yaml11 = yaml_version == "1.1"
    root = _compose_checked(text, filename, span, yaml11=yaml11)
    if root is None:
        return None
    converter = _NodeConverter(filename, yaml11=yaml11)
    value = converter.convert(root, ())
    if converter.diagnostics:
        if span is not None:
            for diagnostic in converter.diagnostics:
                diagnostic.span = span
        raise ConfigError(converter.diagnostics)
    return value


def _compose_checked(
    text: str, filename: str, span: Span | None = None, values_before: int = 0, yaml11: bool = True
) -> Any:
    from ruamel.yaml.error import MarkedYAMLError, YAMLError
    from ruamel.yaml.reader import ReaderError

    composer = _Composer(filename, values_before, yaml11)
    try:
        root = composer.compose(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = span or (_mark_span(filename, mark) if mark else None)
        message = " ".join(filter(None, [e.context, e.problem])) or str(e)
        raise ConfigError([Diagnostic(f"invalid YAML: {message}", span=where, code="yaml-syntax")]) from None
    except ReaderError as e:  # a character YAML does not allow (a binary file): positioned by its index
        where = span or _position_span(filename, text, e.position)
        character = f"#x{e.character:04x}" if isinstance(e.character, int) else repr(e.character)
        raise ConfigError(
            [Diagnostic(f"invalid YAML: unacceptable character {character}: {e.reason}", span=where,
                        hint="a config is YAML text; is this a binary file?", code="yaml-syntax")]
        ) from None
    except YAMLError as e:
        raise ConfigError([Diagnostic(f"invalid YAML in {filename}: {e}", span=span, code="yaml-syntax")]) from None
    except ConfigError as e:
        if span is not None:
            for diagnostic in e.diagnostics:
                diagnostic.span = span
        raise
    if root is not None:
        problem = _expansion_problem(root, composer.aliases, filename, values_before)
        if problem is not None:
            if span is not None:
                problem.span = span
            raise ConfigError([problem])
    return root


_parsers = threading.local()


def _event_parser() -> Any:
    """This thread's YAML object, made once: making one searches ruamel's plugin folders (~0.2 ms), which a
    config of many small values (``--set`` values, resolver defaults) would otherwise pay per value. Its
    ``parse`` keeps no state between texts; its constructor is used for single scalars and forgets them."""
    yaml = getattr(_parsers, "yaml", None)
    if yaml is None:
        from ruamel.yaml import YAML

        yaml = _parsers.yaml = YAML(typ="safe")
    return yaml


def _position_span(filename: str, text: str, position: int) -> Span:
    position = max(0, min(position, len(text)))
    line = text.count("\n", 0, position) + 1
    col = position - (text.rfind("\n", 0, position) + 1) + 1
    return Span(filename, line, col, line, col + 1)


def _mark_span(filename: str, mark: Any, end: Any = None) -> Span:
    end = end or mark
    return Span(filename, mark.line + 1, mark.column + 1, end.line + 1, end.column + 1)


def _shown_text(text: str) -> str:
    """A scalar's text as quoted in a message: its first 40 characters."""
    return text if len(text) <= 40 else text[:40] + "..."


def _tag_name(node: Any) -> str:
    tag = node.tag
    return str(getattr(tag, "value", tag) or "")


class _Composer:
    """YAML events -> ruamel nodes, without recursion, refusing what a config never needs before it costs
    anything: nesting beyond MAX_DEPTH, more than one document, an alias to an undefined anchor or into the node
    that defines it (a value containing itself)."""

    def __init__(self, filename: str, values_before: int = 0, yaml11: bool = True):
        self.filename = filename
        self.values_before = values_before  # read from the other files of a composed config
        self.yaml11 = yaml11  # plain scalars typed by YAML 1.1 (as the reference), else by the parser's 1.2
        # (alias event's mark, how many collections enclose it, the node it stands for)
        self.aliases: list[tuple[Any, int, Any]] = []

    def _error(self, message: str, mark: Any, code: str, hint: str | None = None) -> ConfigError:
        return ConfigError([Diagnostic(message, span=_mark_span(self.filename, mark), hint=hint, code=code)])

    def compose(self, text: str) -> Any:
        from ruamel.yaml.events import (
            AliasEvent,
            CollectionEndEvent,
            DocumentStartEvent,
            MappingStartEvent,
            ScalarEvent,
            SequenceStartEvent,
        )
        from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

        self.node_kinds = {"scalar": ScalarNode, "sequence": SequenceNode, "mapping": MappingNode}
        yaml = _event_parser()  # libyaml's event parser when ruamel.yaml.clib is installed; it does not recurse
        self.resolver = yaml.resolver
        # A plain scalar's tag is a function of its text within one document (whose YAML version is fixed):
        # resolved once per distinct (text, implicit) pair, not once per scalar (keys repeat in every component)
        self.scalar_tags: dict[tuple[str, Any], Any] = {}
        self.root: Any = None
        self.stack: list[list] = []  # open collections: [node, anchor, pending mapping key]
        self.anchors: dict[str, Any] = {}
        self.open_anchors: set[str] = set()
        self.documents = 0
        count = self.values_before  # values (scalars, collections and aliases), keys included
        for event in yaml.parse(text):
            if isinstance(event, (ScalarEvent, SequenceStartEvent, MappingStartEvent, AliasEvent)):
                count += 1
            if count > MAX_VALUES:
                raise self._error(
                    f"more than {MAX_VALUES:,} values{_IN_ALL if self.values_before else ''}; a config may hold at "
                    "most that many",
                    event.start_mark,
                    "limit",
                    hint="a config is small data; see modalities/config/limits.py",
                )
            if isinstance(event, ScalarEvent):
                self._scalar(event)
            elif isinstance(event, (SequenceStartEvent, MappingStartEvent)):
                self._open_collection(event, is_sequence=isinstance(event, SequenceStartEvent))
            elif isinstance(event, CollectionEndEvent):
                node, anchor, _ = self.stack.pop()
                node.end_mark = event.end_mark
                self.open_anchors.discard(anchor)
            elif isinstance(event, AliasEvent):
                self._alias(event)
            elif isinstance(event, DocumentStartEvent):
                self.documents += 1
                if self.documents > 1:
                    raise self._error(
                        "a config file holds one YAML document; this is a second one (`---`)",
                        event.start_mark,
                        "yaml-documents",
                    )
        return self.root

    def _attach(self, node: Any) -> None:
        """``node`` into the open collection: a sequence's item, a mapping's key, or the value of its key."""
        if not self.stack:
            self.root = node
            return
        frame = self.stack[-1]
        if isinstance(frame[0], self.node_kinds["sequence"]):
            frame[0].value.append(node)
        elif frame[2] is None:
            frame[2] = node
        else:
            frame[0].value.append((frame[2], node))
            frame[2] = None

    def _scalar(self, event: Any) -> None:
        ScalarNode = self.node_kinds["scalar"]
        tag = event.tag
        if tag is None or tag == "!":
            key = (event.value, event.implicit)
            tag = self.scalar_tags.get(key)
            if tag is None:
                if self.yaml11 and event.implicit[0]:  # plain (libyaml marks `! 5` plain too, as PyYAML's does)
                    tag = _YAML_TAG_PREFIX + plain_tag(event.value)
                else:
                    tag = self.resolver.resolve(ScalarNode, event.value, event.implicit)
                self.scalar_tags[key] = tag
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
        if event.anchor is not None:
            self.anchors[event.anchor] = node
        self._attach(node)

    def _open_collection(self, event: Any, is_sequence: bool) -> None:
        if len(self.stack) >= MAX_DEPTH:
            raise self._error(
                f"nested more than {MAX_DEPTH} levels deep",
                event.start_mark,
                "limit",
                hint="a config is shallow data; this looks generated or corrupt (see modalities/config/limits.py)",
            )
        kind = self.node_kinds["sequence" if is_sequence else "mapping"]
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.resolver.resolve(kind, None, event.implicit)
        node = kind(tag, [], event.start_mark, None, flow_style=event.flow_style)
        if event.anchor is not None:
            self.anchors[event.anchor] = node
            self.open_anchors.add(event.anchor)
        self._attach(node)
        self.stack.append([node, event.anchor, None])

    def _alias(self, event: Any) -> None:
        if event.anchor in self.open_anchors:
            raise self._error(
                f"the alias *{event.anchor} refers to a node that contains it (a value cannot contain itself)",
                event.start_mark,
                "yaml-alias",
            )
        if event.anchor not in self.anchors:
            raise self._error(
                f"the alias *{event.anchor} has no anchor &{event.anchor} before it",
                event.start_mark,
                "yaml-alias",
            )
        self.aliases.append((event.start_mark, len(self.stack), self.anchors[event.anchor]))
        self._attach(self.anchors[event.anchor])


_IN_ALL = " in all the files composed"


def _expansion_problem(
    root: Any, aliases: list[tuple[Any, int, Any]], filename: str, values_before: int = 0
) -> Diagnostic | None:
    """How big and deep the config is once aliases are expanded (each alias is a full copy in the plain values),
    computed over the shared nodes without expanding them. Over a limit: a Diagnostic at the first alias (in
    the file) that goes over it."""
    from ruamel.yaml.nodes import MappingNode, SequenceNode

    if not aliases:
        return None  # without aliases, size is bounded by the composer's count and depth by its stack
    cap = 10 * MAX_VALUES  # sizes are only compared with MAX_VALUES: no need to count exponentially far
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    pending: list[tuple[Any, bool]] = [(root, False)]
    while pending:
        node, children_done = pending.pop()
        if id(node) in size:
            continue
        if isinstance(node, SequenceNode):
            children = node.value
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            size[id(node)], depth[id(node)] = 1, 0
            continue
        if children_done:
            size[id(node)] = min(1 + sum(size[id(c)] for c in children), cap)
            depth[id(node)] = 1 + max((depth[id(c)] for c in children), default=0)
        else:
            pending.append((node, True))
            pending.extend((c, False) for c in children if id(c) not in size)
    hint = (
        "each alias is a copy of its anchor's value; a config never needs this many (see modalities/config/limits.py)"
    )
    if depth[id(root)] > MAX_DEPTH:
        mark = next(mark for mark, level, node in aliases if level + depth[id(node)] > MAX_DEPTH)
        return Diagnostic(
            f"through YAML aliases the config is nested more than {MAX_DEPTH} levels deep",
            span=_mark_span(filename, mark),
            hint=hint,
            code="limit",
        )
    if size[id(root)] + values_before > MAX_VALUES:
        mark, _, node = next(
            (alias for alias in aliases if size[id(alias[2])] + values_before > MAX_VALUES),
            max(aliases, key=lambda alias: size[id(alias[2])]),
        )
        stands_for = size[id(node)]
        return Diagnostic(
            f"through YAML aliases the config expands to more than {MAX_VALUES:,} values"
            f"{_IN_ALL if values_before else ''}; this alias alone stands "
            f"for {'more than ' if stands_for >= cap else ''}{stands_for:,}",
            span=_mark_span(filename, mark),
            hint=hint,
            code="limit",
        )
    return None


class _NodeConverter:
    """Nodes -> plain values and their positions. The composer has bounded the depth and the expanded size."""

    def __init__(self, filename: str, merge_tags: bool = False, yaml11: bool = True):
        self.filename = filename
        self.merge_tags = merge_tags
        self.yaml11 = yaml11
        self.marks: dict[Path, str] = {}
        self.source_map = SourceMap()
        self.diagnostics: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        parser = _event_parser()
        self._constructor = parser.constructor  # of scalars only: tags and nesting are handled here
        self._resolver = parser.resolver

    def span(self, node: Any) -> Span:
        return _mark_span(self.filename, node.start_mark, node.end_mark)

    def convert(self, node: Any, path: Path) -> Any:
        from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

        self.source_map.values[path] = self.span(node)
        tag = _tag_name(node)
        if tag in (DELETE_TAG, REPLACE_TAG) and self.merge_tags:
            return self._merge_tag(node, path, tag)
        if not self._tag_allowed(tag):
            merge_tag = tag in (DELETE_TAG, REPLACE_TAG)
            self.diagnostics.append(
                Diagnostic(
                    f"YAML tag '{tag.replace(_YAML_TAG_PREFIX, '!!')}' is not allowed",
                    span=self.span(node),
                    path=path,
                    hint=f"{tag} belongs to a file merged onto others (see docs/config-format.md)"
                    if merge_tag
                    else "configs are plain data: remove the tag (tags that construct Python objects are never run)",
                    code="yaml-tag",
                )
            )
            return None
        if isinstance(node, ScalarNode):
            value = self._scalar(node, path)
            if self.yaml11 and _is_plain(node):
                self._check_yaml11_value(node, path, tag[len(_YAML_TAG_PREFIX) :], value)
            return value
        if isinstance(node, SequenceNode):
            return [self.convert(item, path + (i,)) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        return None

    def _check_yaml11_value(self, node: Any, path: Path, tag: str, meaning: Any) -> None:
        """A plain value the reference reads unlike it looks: a warning (octal, base 60), or an error for what it
        cannot read at all (a plain `=`, YAML 1.1's "value" key, which OmegaConf.load refuses)."""
        if tag == "value":
            self.diagnostics.append(Diagnostic(
                "a plain '=' is YAML 1.1's value key, which Modalities (OmegaConf.load) cannot read as a value",
                span=self.span(node), path=path, hint="quote it ('=') to mean the text", code="yaml-scalar"))
            return
        if meaning is None:
            return  # not a number, or one reported as an error where it was read
        kind = surprise(node.value, tag)
        if kind is None:
            return
        shown = _shown_text(node.value)
        self.warnings.append(Diagnostic(
            f"'{shown}' is read as the {kind} number {meaning!r}: Modalities reads configs by YAML 1.1 rules, "
            "and so do we",
            span=self.span(node), path=path, severity=WARNING, code="yaml-1.1",
            hint=f"write {meaning!r} to mean it without this warning, or quote it ('{shown}') to mean the text"
            + (" (a leading zero makes an integer octal)" if kind == "octal" else "")))

    def _merge_tag(self, node: Any, path: Path, tag: str) -> Any:
        """``!delete`` (no value) or ``!replace`` (a mapping or list, read as it is): recorded in ``marks``."""
        from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

        if tag == DELETE_TAG:
            if not isinstance(node, ScalarNode) or node.value not in ("", "~", "null"):
                self.diagnostics.append(
                    Diagnostic(
                        "!delete takes no value: it removes the key it is written under",
                        span=self.span(node),
                        path=path,
                        hint="write `key: !delete` to remove an inherited key, or the new value without the tag",
                        code="merge-tag",
                    )
                )
                return None
            self.marks[path] = DELETE_TAG
            return None
        self.marks[path] = REPLACE_TAG
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.convert(item, path + (i,)) for i, item in enumerate(node.value)]
        if not _is_plain(node):
            node.tag = _YAML_TAG_PREFIX + "str"
        elif self.yaml11:
            node.tag = _YAML_TAG_PREFIX + plain_tag(node.value)
        else:
            node.tag = self._resolver.resolve(ScalarNode, node.value, (True, False))
        return self._scalar(node, path)

    def _tag_allowed(self, tag: str) -> bool:
        return tag.startswith(_YAML_TAG_PREFIX) and tag[len(_YAML_TAG_PREFIX) :] in _PLAIN_TAGS

    def _scalar(self, node: Any, path: Path) -> Any:
        tag = _tag_name(node)[len(_YAML_TAG_PREFIX) :]
        if tag in ("str", "value"):
            return node.value
        if tag == "timestamp":
            return node.value  # dates stay text: configs feed JSON-like values to pydantic
        if tag == "int" and sum(c.isalnum() for c in node.value) > MAX_INT_DIGITS:
            digits = sum(c.isalnum() for c in node.value)
            self._scalar_error(node, path, f"an integer of {digits:,} digits is too long (at most {MAX_INT_DIGITS:,})")
            return None
        try:
            if self.yaml11 and tag in _YAML11_SCALARS:
                value = construct(tag, node.value)
            else:
                value = self._constructor.construct_object(node, deep=True)
                self._constructor.constructed_objects.pop(node, None)  # the constructor is shared: keep nothing
        except Exception as e:  # e.g. `!!int abc`: the tag asks for a type the text is not; a plain `0x_`
            shown = _shown_text(node.value)
            hint = "write the value plainly"
            if self.yaml11 and _is_plain(node):  # a plain `0x_`: the reference's int rule takes it, and fails
                hint = "Modalities reads it by YAML 1.1 rules and cannot either: quote it to mean the text"
            self._scalar_error(node, path, f"'{shown}' is not a valid !!{tag} ({type(e).__name__})", hint)
            return None
        if isinstance(value, int) and abs(value) >= _INT_BOUND:  # base 60 grows faster than its text
            self._scalar_error(node, path, f"an integer of more than {MAX_INT_DIGITS:,} digits is too long")
            return None
        return value

    def _scalar_error(self, node: Any, path: Path, message: str, hint: str = "write the value plainly") -> None:
        self.diagnostics.append(Diagnostic(message, span=self.span(node), path=path, hint=hint, code="yaml-scalar"))

    def _mapping(self, node: Any, path: Path) -> dict:
        result: dict[Any, Any] = {}
        key_nodes: dict[Any, Any] = {}
        merged: list[tuple[Any, Any]] = []
        for key_node, value_node in node.value:
            if _tag_name(key_node) == _YAML_TAG_PREFIX + "merge":
                merged.extend(self._merge_sources(value_node, path))
                continue
            if _tag_name(key_node) not in _KEY_TAGS:
                self.diagnostics.append(self._key_error(key_node, path))
                continue
            key = self._scalar(key_node, path)
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
            twin = _integer_twin(key)
            if twin is not None and twin in key_nodes:
                self._ambiguous_key(key, key_node, key_nodes[twin], path)
                continue
            key_nodes[key] = key_node
            self.source_map.keys[path + (key,)] = self.span(key_node)
            result[key] = self.convert(value_node, path + (key,))
        # Keys from `<<: *anchor` merges fill in only what the mapping does not set itself.
        for key_node, value_node in merged:
            if _tag_name(key_node) not in _KEY_TAGS:
                continue  # reported where the merged mapping is written
            key = self._scalar(key_node, path)
            if key not in result:
                self.source_map.keys[path + (key,)] = self.span(key_node)
                result[key] = self.convert(value_node, path + (key,))
        return result

    def _key_error(self, key_node: Any, path: Path) -> Diagnostic:
        tag = _tag_name(key_node)[len(_YAML_TAG_PREFIX) :]
        if self.yaml11 and _is_plain(key_node) and tag in _YAML11_SCALARS:
            shown = _shown_text(key_node.value)
            return Diagnostic(
                f"the key '{shown}' is read as a {tag} by YAML 1.1 rules (as Modalities reads it), not as a name",
                span=self.span(key_node), path=path, hint=f"quote it ('{shown}') to mean the name",
                code="yaml-scalar")
        return Diagnostic("mapping keys must be plain strings", span=self.span(key_node), path=path)

    def _ambiguous_key(self, key: Any, key_node: Any, twin_node: Any, path: Path) -> None:
        """The key 7 beside the key '7': a dotted path (``${m.7}``, ``--set m.7=``) could not tell them apart, and
        the reference's OmegaConf refuses such a mapping ("Conflicting integer and string keys")."""
        first = self.span(twin_node)
        self.diagnostics.append(
            Diagnostic(
                f"the key {key!r} and the key {_integer_twin(key)!r} (line {first.line}) would be one key in a "
                "dotted path such as ${...} or --set",
                span=self.span(key_node),
                path=path + (key,),
                hint="rename one of them (Modalities, through OmegaConf, refuses such a mapping too)",
                code="duplicate-key",
            )
        )

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


# a plain `=` key is YAML 1.1's "value" tag, which OmegaConf.load reads as the text
_KEY_TAGS = (_YAML_TAG_PREFIX + "str", _YAML_TAG_PREFIX + "int", _YAML_TAG_PREFIX + "value")
_INT_BOUND = 10**MAX_INT_DIGITS  # the first integer of more than MAX_INT_DIGITS digits


def _is_plain(node: Any) -> bool:
    """A plain scalar: ruamel's style is None or "" for one, the quote or block character for other scalars;
    collections have none."""
    return not getattr(node, "style", "collection")


def _integer_twin(key: Any) -> Any:
    """The key a dotted path could not tell from ``key``: the text '7' for the integer 7 and back ('07' or '+7'
    have none: the path part '07' names the key '07' when it is there), as OmegaConf's DictConfig decides."""
    if isinstance(key, int):
        return str(key)
    try:
        number = int(key)
    except ValueError:
        return None
    return number if str(number) == key else None
