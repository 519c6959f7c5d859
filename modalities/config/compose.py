"""Stage 1 for a config made of several files: ``extends:`` and the files of a command line -> one Document.

    # exp.yaml                                  modalities validate exp.yaml
    extends: base.yaml                          # or a list, merged left to right; relative to this file
    optimizer: {config: {lr: 1.0e-4}}           # only what differs

    modalities validate base.yaml exp.yaml      # the same, with files named on the command line

Merge rules (docs/config-format.md): mappings merge key by key; lists and scalars replace; a component node
whose ``component_key`` or ``variant_key`` changes (or a component that becomes a reference, or the reverse) is
replaced whole, so the old variant's fields never leak into the new one; ``key: !delete`` removes an inherited
key; ``key: !replace {...}`` sets a mapping whole. Each file is merged once, where it first appears (depth
first: the files a file extends come before it), so a base that two files extend is not merged twice.

Every key and value keeps the span of the file that wrote it; the limits of one file (bytes, values) count
across all of them, and MAX_CONFIG_FILES bounds how many are read. Errors point into the file that holds them:
a missing or cyclic base at the ``extends`` entry that names it.

``compose_files`` is the entry point (also for editors: ``sources`` stands in for files with unsaved changes).
"""

from __future__ import annotations

import difflib
import errno
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any, Union

from modalities.config.diagnostics import WARNING, ConfigError, Diagnostic, did_you_mean, has_errors
from modalities.config.limits import MAX_CONFIG_BYTES, MAX_CONFIG_FILES
from modalities.config.load import DELETE_TAG, Document, not_utf8, load_text
from modalities.config.spans import Path, SourceMap, Span, dotted

EXTENDS_KEY = "extends"
PathLike = Union[str, "os.PathLike[str]"]


@dataclass
class SourceFile:
    """One file of a composed config."""

    name: str  # as positions name it: as given on the command line, else relative to the working directory
    path: FilePath  # resolved (symlinks followed): the file's identity
    location: str  # absolute, as reached (symlinks kept): where a copy goes among the others
    text: str
    given: bool  # named by the caller (command line, API), not only through `extends`
    deleted: dict[Path, Span] = field(default_factory=dict)  # what its `!delete`s removed, and where each is


def compose_files(
    paths: PathLike | Sequence[PathLike], *, sources: Mapping[PathLike, str] | None = None
) -> Document:
    """The config the files make, merged left to right, each after the files it extends. ``sources`` maps a
    path to the text to read for it instead of the file's (an editor's unsaved buffer; the file need not
    exist). Raises ConfigError with every error of every file (each positioned in its own file).

    A single file without ``extends`` and merge tags is returned exactly as ``load_text`` reads it."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise ValueError("compose_files needs at least one config file")
    composer = _Composer({_real(p): text for p, text in (sources or {}).items()})
    for path in paths:
        composer.include(str(FilePath(path)), None, None)
    if has_errors(composer.diagnostics):
        error = ConfigError(composer.diagnostics)
        error.files = composer.files  # what was read, for an editor that shows each file's own errors
        raise error
    given = [s for s in composer.files if s.given]
    return Document(
        values=composer.values if composer.values is not None else {},
        source_map=composer.source_map,
        config_path=given[-1].path if given else None,
        files=composer.files,
        warnings=composer.diagnostics,
    )


def _real(path: PathLike) -> FilePath:
    return FilePath(os.path.realpath(os.path.abspath(path)))


class _Composer:
    def __init__(self, texts: dict[FilePath, str]):
        self.texts = texts  # by resolved path: what to read instead of the file (an editor's buffer)
        self.files: list[SourceFile] = []
        self.diagnostics: list[Diagnostic] = []
        self.values: dict | None = None  # the merged config so far
        self.source_map = SourceMap()
        self._read: set[FilePath] = set()  # each file once
        self._chain: list[SourceFile] = []  # the files being composed, outermost first: a cycle returns to one
        self._bytes = 0
        self._values_read = 0
        self._marks: dict[Path, str] = {}
        self._spans: SourceMap = SourceMap()  # of the file being merged
        self._source: SourceFile | None = None  # the file being merged

    def error(self, message: str, span: Span | None, hint: str | None = None, path: Path = (), code="extends") -> None:
        if span is None and code == "extends":  # about a file named on the command line, not by an `extends`
            code = "config-file"
        self.diagnostics.append(Diagnostic(message, span=span, path=path, hint=hint, code=code))

    # --- finding and reading files ---------------------------------------------------------------------------

    def include(self, reference: str, at: Span | None, naming: SourceFile | None) -> None:
        """Merge the file ``reference`` names (given by the caller when ``naming`` is None, else written in
        ``naming``'s `extends` at ``at``) and, before it, the files it extends."""
        location = os.path.join(os.path.dirname(naming.location), reference) if naming else os.path.abspath(reference)
        try:
            real = _real(location)
        except (OSError, RuntimeError, ValueError):
            real = FilePath(os.path.abspath(location))  # reported when it is opened
        chain = [s.path for s in self._chain]
        if real in chain:
            links = [s.name for s in self._chain[chain.index(real):]] + [self._chain[chain.index(real)].name]
            self.error(
                "extends cycle: " + " -> ".join(links),
                at,
                hint="a file cannot extend itself, directly or through the files it extends",
            )
            return
        if real in self._read:
            return  # already merged, where it first appeared
        if len(self._read) >= MAX_CONFIG_FILES:
            self.error(f"a config may be composed of at most {MAX_CONFIG_FILES} files; this would be one more", at,
                       hint="see modalities/config/limits.py")
            return
        self._read.add(real)
        name = reference if naming is None else self._shown_name(real, naming)
        text = self._text(location, real, name, at, naming)
        if text is None:
            return
        source = SourceFile(name, real, os.path.normpath(os.path.abspath(location)), text, given=naming is None)
        self._compose(source)

    @staticmethod
    def _shown_name(real: FilePath, naming: SourceFile) -> str:
        """Absolute when the file that names it was given so (an editor), else relative to the working
        directory, so that positions are paths one can open."""
        if os.path.isabs(naming.name):
            return str(real)
        try:
            return os.path.relpath(real)
        except ValueError:  # another drive (Windows)
            return str(real)

    def _text(self, location: str, real: FilePath, name: str, at: Span | None, naming: SourceFile | None):
        """The file's text, or None after reporting why it cannot be read (at the `extends` entry naming it)."""
        if real in self.texts:
            text = self.texts[real]
            return text if self._charge_bytes(len(text.encode("utf-8", "replace")), name, at, exact=True) else None
        where = f" (extends is relative to {naming.name}'s folder)" if naming else ""
        try:
            info = os.stat(location)
        except FileNotFoundError:
            self.error(f"config file not found: {name}", at, hint="check the path" + where)
            return None
        except OSError as e:
            loop = e.errno == errno.ELOOP
            self.error(f"cannot read config file {name}: " + ("a symlink loop" if loop else e.strerror or str(e)), at)
            return None
        except ValueError as e:  # a NUL in the name
            self.error(f"cannot read config file {name!r}: {e}", at, hint="check the path" + where)
            return None
        if stat.S_ISDIR(info.st_mode):
            self.error(f"{name} is a directory, not a config file", at, hint="name a YAML file" + where)
            return None
        if naming is not None and not stat.S_ISREG(info.st_mode):
            self.error(f"{name} is not a regular file", at, hint="extends names YAML files")
            return None
        if stat.S_ISREG(info.st_mode) and self._bytes + info.st_size > MAX_CONFIG_BYTES:
            self._charge_bytes(info.st_size, name, at, exact=True)  # over the limit: reports it
            return None
        return self._read_bounded(location, name, at)

    def _read_bounded(self, location: str, name: str, at: Span | None) -> str | None:
        left = MAX_CONFIG_BYTES - self._bytes
        try:
            with open(location, "rb") as file:
                data = file.read(left + 1)
        except OSError as e:
            self.error(f"cannot read config file {name}: {e.strerror or e}", at)
            return None
        if not self._charge_bytes(len(data), name, at):
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            # At the byte, in that file (line and column, as a YAML error in a base is), whether the file was given
            # or reached by `extends`; the hint names the entry that reached it.
            diagnostic = not_utf8(name, data, e)
            if at is not None:
                diagnostic.hint = f"{diagnostic.hint}; is it the file you meant? (extended at {at})"
            self.diagnostics.append(diagnostic)
            return None

    def _charge_bytes(self, size: int, name: str, at: Span | None, exact: bool = False) -> bool:
        """Count ``size`` bytes (``exact``: the file's size, else what a bounded read got: more than left)."""
        before, self._bytes = self._bytes, self._bytes + size
        if self._bytes <= MAX_CONFIG_BYTES:
            return True
        size_text = f"{size:,} bytes" if exact else f"more than {MAX_CONFIG_BYTES - before:,} bytes"
        composed = f" and the files composed before it {before:,}" if before else ""
        self.error(f"{name} is {size_text}{composed}; a config may be at most {MAX_CONFIG_BYTES:,} bytes"
                   + (" in all" if before else ""), at, hint="a config is small text; see modalities/config/limits.py",
                   code="limit")
        return False

    # --- one file: its bases, then itself -------------------------------------------------------------------

    def _compose(self, source: SourceFile) -> None:
        try:
            document = load_text(source.text, source.name, merge_tags=True, values_before=self._values_read)
        except ConfigError as e:
            self.diagnostics += e.diagnostics
            self.files.append(source)
            return
        self._values_read += len(document.source_map.values) + len(document.source_map.keys)
        bases = self._extends(document)
        self._chain.append(source)
        try:
            for reference, at in bases:
                self.include(reference, at, source)
        finally:
            self._chain.pop()
        self.files.append(source)
        self._merge_file(document, source)

    def _extends(self, document: Document) -> list[tuple[str, Span | None]]:
        """The files the document's `extends` names, with their spans; the key is taken out of the document."""
        values, spans = document.values, document.source_map
        if EXTENDS_KEY not in values:
            return []
        written = values.pop(EXTENDS_KEY)
        items = written if isinstance(written, list) else [written]
        at = spans.values.get((EXTENDS_KEY,))
        found = []
        if document.marks.pop((EXTENDS_KEY,), None) is not None:
            self.error("!delete and !replace do not apply here: extends itself is not merged", at, path=(EXTENDS_KEY,),
                       hint="write `extends: base.yaml` or `extends: [base.yaml, other.yaml]`")
            items = []
        for index, item in enumerate(items):
            item_at = spans.values.get((EXTENDS_KEY, index), at) if isinstance(written, list) else at
            if not isinstance(item, str) or not item.strip():
                self.error(f"{item!r} is not a file name", item_at, path=(EXTENDS_KEY,),
                           hint="extends names the files this one is merged onto: write `extends: base.yaml` or "
                           "`extends: [base.yaml, other.yaml]`")
                continue
            found.append((item, item_at))
        spans.drop_subtree((EXTENDS_KEY,))
        spans.values.pop((EXTENDS_KEY,), None)
        spans.keys.pop((EXTENDS_KEY,), None)
        return found

    # --- merging ---------------------------------------------------------------------------------------------

    def _merge_file(self, document: Document, source: SourceFile) -> None:
        if self.values is None and not document.marks:
            self.values, self.source_map = document.values, document.source_map  # the first file, as read
            return
        self._marks, self._spans, self._source = document.marks, document.source_map, source
        if self.values is None:
            self.values = {}
        if document.marks.get(()) is not None:
            self.error("a whole file cannot be deleted or replaced; tag its keys", self._spans.values.get(()))
        self._set_container_spans(())
        self._merge_mapping(self.values, document.values, ())

    def _set_container_spans(self, path: Path) -> None:
        for table, own in ((self.source_map.values, self._spans.values), (self.source_map.keys, self._spans.keys)):
            if path in own:
                table[path] = own[path]

    def _merge_mapping(self, target: dict, overlay: dict, path: Path) -> None:
        for key, value in overlay.items():
            here = path + (key,)
            mark = self._marks.get(here)
            old = target.get(key, _ABSENT)
            if mark == DELETE_TAG:
                self._delete(target, key, here)
            elif isinstance(old, dict) and isinstance(value, dict) and mark is None and not _replaces(old, value):
                self._set_container_spans(here)
                self._merge_mapping(old, value, here)
            else:
                if old is _ABSENT and target and not (isinstance(value, dict) and "component_key" in value):
                    self._warn_if_misspelled(key, target, here)
                target[key] = self._replacement(old, value, here, keep_kind=mark is None)

    def _warn_if_misspelled(self, key: Any, target: dict, path: Path) -> None:
        """A key this file adds next to one the files below have under a very similar name: most likely meant to
        change that one (a misspelled key would change nothing and pass unnoticed where any key is allowed)."""
        close = difflib.get_close_matches(str(key), [str(k) for k in target], n=1, cutoff=0.85)
        if close:
            self.diagnostics.append(Diagnostic(
                f"'{key}' is new here (the files this one is merged onto have no such key), so it changes nothing of "
                f"theirs; did you mean '{close[0]}'?",
                span=self._spans.keys.get(path), path=path, severity=WARNING, code="extends-new-key",
                hint=f"to change '{close[0]}', write that name; to add a new key, ignore this"))

    def _delete(self, target: dict, key: Any, path: Path) -> None:
        if key in target:
            self._forget(target.pop(key), path)
            self._source.deleted[path] = self._spans.keys.get(path) or self._spans.values.get(path)
            return
        self.error(
            f"nothing to delete: '{dotted(path)}' is not in the files this one is merged onto",
            self._spans.keys.get(path) or self._spans.values.get(path),
            hint=did_you_mean(key, target) or "remove the line",
            path=path,
        )

    def _replacement(self, old: Any, value: Any, path: Path, keep_kind: bool) -> Any:
        """``value`` where ``old`` was (or nothing, _ABSENT): the old one's positions go, the new one's come.
        A component node whose variant changes keeps its component_key unless the new one writes another
        (``keep_kind``; not under `!replace`, which sets the node as written)."""
        inherited_kind = None
        writes_kind = isinstance(value, dict) and bool({"component_key", "instance_key"} & set(value))
        if keep_kind and _is_component(old) and isinstance(value, dict) and not writes_kind:
            kind_path = path + ("component_key",)
            inherited_kind = (old["component_key"], self.source_map.values.get(kind_path),
                              self.source_map.keys.get(kind_path))
        if old is not _ABSENT:
            self._forget(old, path)
        self._adopt(value, path)
        if inherited_kind is None:
            return value
        kind, value_span, key_span = inherited_kind
        for table, span in ((self.source_map.values, value_span), (self.source_map.keys, key_span)):
            if span is not None:
                table[path + ("component_key",)] = span
        return {"component_key": kind, **value}

    def _forget(self, value: Any, path: Path) -> None:
        """Drop the positions of a value that is replaced or deleted (walking it: cheaper than the whole map)."""
        pending = [(value, path)]
        while pending:
            item, at = pending.pop()
            self.source_map.values.pop(at, None)
            self.source_map.keys.pop(at, None)
            if isinstance(item, dict):
                pending.extend((v, at + (k,)) for k, v in item.items())
            elif isinstance(item, list):
                pending.extend((v, at + (i,)) for i, v in enumerate(item))

    def _adopt(self, value: Any, path: Path) -> None:
        """Take the positions of a value this file sets whole; a `!delete` inside it has nothing to delete."""
        pending = [(value, path)]
        while pending:
            item, at = pending.pop()
            self._set_container_spans(at)
            if isinstance(item, dict):
                for key in list(item):
                    if self._marks.get(at + (key,)) == DELETE_TAG:
                        del item[key]
                        self._delete({}, key, at + (key,))
                    else:
                        pending.append((item[key], at + (key,)))
            elif isinstance(item, list):
                for index, element in enumerate(item):
                    if self._marks.get(at + (index,)) == DELETE_TAG:
                        self.error("!delete removes a key of a mapping; a list is replaced whole",
                                   self._spans.values.get(at + (index,)), path=at + (index,),
                                   hint="write the whole list as it should be")
                    pending.append((element, at + (index,)))


_ABSENT = object()


def _is_component(value: Any) -> bool:
    return isinstance(value, dict) and "component_key" in value


def _replaces(old: dict, new: dict) -> bool:
    """Whether mapping ``new`` replaces mapping ``old`` whole rather than merging into it: a component whose
    kind or variant changes, or a component that becomes a reference, or the reverse."""
    if "component_key" in old:
        if "instance_key" in new:
            return True
        return any(key in new and new[key] != old.get(key) for key in ("component_key", "variant_key"))
    return "instance_key" in old and "component_key" in new
