"""One check of a config in an editor: the compile `modalities validate` runs, on the editor's texts.

``check`` calls :func:`modalities.config.compiler.compile_file` with the open buffers as ``sources`` (so every
file the compiler reads, the config and any file it is composed from, is read as the editor has it), folds the
diagnostics as validate prints them, and groups them by the file their span names: a mistake in a base file
of a composed config shows in that file. A check that raises (a bug in the compiler or in a plugin's code)
becomes one diagnostic saying what failed; the server goes on.

Composed configs need nothing more here: the compiler reads every file through ``read_config_text(path,
sources)`` (modalities/config/load.py), each value's span names the file that wrote it, diagnostics are grouped
by that file, and ``Analysis.files`` (every file a span names) tells the server which open configs to check
again when a base file changes. A base file that contributes no value at all (everything overridden) has no
span: if the composing loader lists the files it read, add them to ``files`` in ``check``.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modalities.config.compiler import CompiledConfig, compile_file
from modalities.config.diagnostics import ConfigError, Diagnostic, fold
from modalities.config.spans import Path as ConfigPath
from modalities.config.spans import Span

logger = logging.getLogger(__name__)

CHECK_FAILED = "check-failed"


@dataclass
class Analysis:
    """What one check made of the config at ``path``: the compiled config (None when the text does not parse),
    validate's diagnostics by the resolved path of the file that holds them, and the texts it read."""

    path: Path
    compiled: CompiledConfig | None
    diagnostics: dict[Path, list[Diagnostic]] = field(default_factory=dict)
    sources: Mapping[Path, str] = field(default_factory=dict)
    files: set[Path] = field(default_factory=set)  # every file the config was read from
    versions: dict[Path, int] = field(default_factory=dict)  # the editor's version of each text read

    def lines(self, file: Path) -> list[str]:
        """The text of ``file`` as this check read it, in lines."""
        text = self.sources.get(file)
        if text is None:
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                text = ""
        return text.splitlines()

    @property
    def values(self) -> Any:
        return self.compiled.document.values if self.compiled is not None else None


def span_file(span: Span | None, default: Path) -> Path:
    """The resolved path of the file a span names (``default`` for a span of no file, e.g. a ``--set`` flag)."""
    if span is None or span.file.startswith("<"):
        return default
    return Path(span.file).resolve()


def check(
    path: Path,
    sources: Mapping[Path, str],
    *,
    experiments_root: Path | None = None,
    compile_config=compile_file,
) -> Analysis:
    """Compile the config at ``path`` (resolved) as `modalities validate` does, reading ``sources`` in place
    of the files they name. Never raises: a failure of the check itself is reported as a diagnostic."""
    compiled = None
    read: list = []  # the files of a composed config (config/compose.SourceFile), those it could read
    try:
        compiled = compile_config(path, experiments_root=experiments_root, sources=sources)
        diagnostics = compiled.diagnostics
        read = list(getattr(compiled.document, "files", None) or [])
    except ConfigError as e:
        diagnostics = e.diagnostics
        read = list(getattr(e, "files", None) or [])
    except Exception as e:  # noqa: BLE001 - a bug must not take the editor's server down
        logger.error("the check of %s failed:\n%s", path, traceback.format_exc())
        where = "".join(traceback.format_exception_only(type(e), e)).strip()
        diagnostics = [
            Diagnostic(
                f"modalities lsp: the check of this config failed ({where}); the server goes on, and its log has "
                "the traceback",
                span=Span(str(path), 1, 1, 1, 2),
                hint="`modalities validate` on this file shows the same failure; report it with the traceback",
                code=CHECK_FAILED,
            )
        ]
    analysis = Analysis(path=path, compiled=compiled, sources=sources, files={path})
    for diagnostic in fold(diagnostics):
        analysis.diagnostics.setdefault(span_file(diagnostic.span, path), []).append(diagnostic)
    if compiled is not None:
        source_map = compiled.document.source_map
        names = {span.file for table in (source_map.values, source_map.keys) for span in table.values()}
        analysis.files.update(span_file(Span(name, 1, 1, 1, 1), path) for name in names)
    # every file the config was composed from: a change of a base file re-checks the experiment even where none
    # of the base's values survived the merge (all overridden or deleted)
    analysis.files.update(source.path for source in read)
    analysis.files.update(analysis.diagnostics)
    return analysis


@dataclass
class Located:
    """What a position in a file is: the config path of the innermost key or value there, and which."""

    path: ConfigPath
    span: Span
    on_key: bool


def locate(analysis: Analysis, file: Path, line: int, column: int) -> Located | None:
    """The innermost key or value of the compiled config at 1-based (line, column) of ``file``."""
    from modalities.lsp.text import contains

    if analysis.compiled is None:
        return None
    source_map = analysis.compiled.document.source_map
    names: dict[str, bool] = {}  # a span's file name -> whether it is ``file``
    best: Located | None = None
    for on_key, table in ((True, source_map.keys), (False, source_map.values)):
        for path, span in table.items():
            if not contains(span, line, column):
                continue
            if span.file not in names:
                names[span.file] = not span.file.startswith("<") and span_file(span, file) == file
            if not names[span.file]:
                continue
            candidate = Located(path, span, on_key)
            if best is None or _narrower(candidate, best):
                best = candidate
    return best


def _narrower(a: Located, b: Located) -> bool:
    size_a = (a.span.end_line - a.span.line, a.span.end_col - a.span.col if a.span.end_line == a.span.line else 0)
    size_b = (b.span.end_line - b.span.line, b.span.end_col - b.span.col if b.span.end_line == b.span.line else 0)
    if size_a != size_b:
        return size_a < size_b
    if a.on_key != b.on_key:
        return a.on_key
    return len(a.path) < len(b.path)  # a span copied by ${...} to a longer path: the place it was written
