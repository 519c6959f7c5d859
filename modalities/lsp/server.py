"""The pygls server: open documents, checks on open and on every change, publishing, and the requests.

Checks run on one worker thread (the compiler's classes and registry stay warm in this process), so the server
keeps answering while a config is compiled. A change starts a check at once when none is running; changes
that arrive during a check are coalesced into one more check of the newest text, started ``debounce`` seconds
after the last of them (a burst of keystrokes or a paste costs one check, and a single edit waits for none).

Every open YAML document that looks like a config (it names a component) is a root: it is compiled as
`modalities validate` would compile that file. Diagnostics are published per file: each file gets what the
checks of every open root found in it (a composed config's base file shows its own mistakes), and a file whose
diagnostics went away gets an empty list. When a file changes, every root that read it is checked again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from modalities.config.diagnostics import ERROR, NOTE, WARNING, Diagnostic
from modalities.config.spans import dotted
from modalities.lsp import features
from modalities.lsp.analysis import Analysis, check
from modalities.lsp.text import span_range, use_position_encoding

logger = logging.getLogger(__name__)

SOURCE = "modalities"
DEFAULT_DEBOUNCE_SECONDS = 0.05
_SEVERITY = {ERROR: lsp.DiagnosticSeverity.Error, WARNING: lsp.DiagnosticSeverity.Warning,
             NOTE: lsp.DiagnosticSeverity.Information}


def looks_like_config(text: str) -> bool:
    """A YAML file is checked once it names a component (or a reference to one): other YAML in the workspace
    (CI files, data) is left to other tools."""
    return "component_key" in text or "instance_key" in text


def to_lsp_diagnostic(diagnostic: Diagnostic, lines: list[str]) -> lsp.Diagnostic:
    """validate's diagnostic at its range: ``dotted.path: message`` and the hint below it, as validate prints."""
    message = (f"{dotted(diagnostic.path)}: " if diagnostic.path else "") + diagnostic.message
    if diagnostic.hint:
        message += f"\nhint: {diagnostic.hint}"
    return lsp.Diagnostic(
        range=span_range(diagnostic.span, lines),
        message=message,
        severity=_SEVERITY.get(diagnostic.severity, lsp.DiagnosticSeverity.Information),
        code=diagnostic.code or None,
        source=SOURCE,
    )


class ConfigLanguageServer(LanguageServer):
    def __init__(self, debounce: float = DEFAULT_DEBOUNCE_SECONDS, check_config: Callable[..., Analysis] = check):
        from modalities import __version__

        super().__init__("modalities", __version__, text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental)
        self.debounce = debounce
        self.check_config = check_config
        self.checks = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modalities-check")
        self.analyses: dict[Path, Analysis] = {}  # root -> its latest check
        self.usable: dict[Path, Analysis] = {}  # root -> its latest check that parsed (for navigation)
        self.published: dict[Path, list[lsp.Diagnostic]] = {}  # file -> what it shows now
        self.pending: set[Path] = set()  # roots changed since their check started
        self.running: dict[Path, asyncio.Future] = {}  # roots being checked -> done when idle
        self.experiments_root: Path | None = None

    # ---- documents -----------------------------------------------------------------------------------

    def open_texts(self) -> dict[Path, str]:
        """The editor's text of every open document, by resolved path: what the compiler reads instead of disk."""
        texts = {}
        for uri, document in list(self.workspace.text_documents.items()):
            path = to_fs_path(uri)
            if path:
                texts[Path(path).resolve()] = document.source
        return texts

    def open_versions(self) -> dict[Path, int]:
        versions = {}
        for uri, document in list(self.workspace.text_documents.items()):
            path = to_fs_path(uri)
            if path and document.version is not None:
                versions[Path(path).resolve()] = document.version
        return versions

    def roots_reading(self, file: Path) -> set[Path]:
        """The open configs a change of ``file`` may change: itself, and every root whose last check read it."""
        texts = self.open_texts()
        roots = {root for root, analysis in self.analyses.items() if file in analysis.files and root in texts}
        if file in texts and looks_like_config(texts[file]):
            roots.add(file)
        return roots

    def changed(self, uri: str) -> None:
        path = to_fs_path(uri)
        if not path:
            return
        for root in self.roots_reading(Path(path).resolve()):
            self.pending.add(root)
            if root not in self.running:
                self.running[root] = asyncio.get_running_loop().create_future()
                asyncio.ensure_future(self._check_until_settled(root))

    def closed(self, uri: str) -> None:
        path = to_fs_path(uri)
        if not path:
            return
        root = Path(path).resolve()
        self.analyses.pop(root, None)
        self.usable.pop(root, None)
        self.pending.discard(root)
        self.publish_all()
        for other in self.roots_reading(root):
            self.changed(other.as_uri())  # a base file closed: its saved text counts again

    # ---- checks --------------------------------------------------------------------------------------

    async def _check_until_settled(self, root: Path) -> None:
        loop = asyncio.get_running_loop()
        try:
            while root in self.pending:
                self.pending.discard(root)
                texts, versions = self.open_texts(), self.open_versions()
                if root not in texts:
                    self.analyses.pop(root, None)
                    break
                analysis = await loop.run_in_executor(self.checks, self._check, root, texts)
                analysis.versions = versions
                self.analyses[root] = analysis
                if analysis.compiled is not None:
                    self.usable[root] = analysis
                self.publish_all(analysis)
                if root in self.pending:
                    await asyncio.sleep(self.debounce)
        except Exception:
            logger.exception("checking %s failed", root)
        finally:
            done = self.running.pop(root, None)
            if done is not None and not done.done():
                done.set_result(None)

    def _check(self, root: Path, texts: dict[Path, str]) -> Analysis:
        return self.check_config(root, texts, experiments_root=self.experiments_root)

    def publish_all(self, checked: Analysis | None = None) -> None:
        """Each file gets the diagnostics every open root's check found in it: files whose list changed, and
        every file ``checked`` (the check just made) read, get it published; files that had some and now have
        none get an empty list."""
        wanted: dict[Path, list[lsp.Diagnostic]] = {}
        for analysis in list(self.analyses.values()):
            wanted.setdefault(analysis.path, [])
            for file, diagnostics in analysis.diagnostics.items():
                lines = analysis.lines(file)
                shown = wanted.setdefault(file, [])
                for diagnostic in diagnostics:
                    converted = to_lsp_diagnostic(diagnostic, lines)
                    if converted not in shown:
                        shown.append(converted)
        fresh = ({checked.path} | set(checked.diagnostics)) if checked is not None else set()
        for file in set(self.published) | set(wanted):
            diagnostics = wanted.get(file, [])
            if file not in fresh and self.published.get(file) == diagnostics:
                continue
            versions = checked.versions if checked is not None and file in fresh else {}
            self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
                uri=file.as_uri(), diagnostics=diagnostics, version=versions.get(file)))
            if file in wanted:
                self.published[file] = diagnostics
            else:
                self.published.pop(file, None)

    async def analysis_for(self, uri: str) -> tuple[Analysis | None, Path | None, list[str]]:
        """The newest check that read the document at ``uri`` (waiting for one under way), the document's
        path and its lines as the editor has them."""
        path = to_fs_path(uri)
        if not path:
            return None, None, []
        file = Path(path).resolve()
        lines = self.workspace.get_text_document(uri).source.splitlines()
        roots = [file] if file in self.analyses or file in self.running else sorted(self.roots_reading(file))
        for root in roots:
            if root in self.running:
                await asyncio.wait_for(asyncio.shield(self.running[root]), timeout=60)
        for root in roots:
            if root in self.usable:
                return self.usable[root], file, lines
        return None, file, lines


def _answer_safely(default: Any = None):
    """A request whose handler raises gets ``default`` (and the log the traceback): never an error that makes
    the editor give up on the server."""

    def wrap(handler):
        async def answered(ls: ConfigLanguageServer, params):
            try:
                return await handler(ls, params)
            except Exception:
                logger.exception("%s failed", handler.__name__)
                return default

        answered.__name__ = handler.__name__
        return answered

    return wrap


def create_server(debounce: float = DEFAULT_DEBOUNCE_SECONDS,
                  check_config: Callable[..., Analysis] = check) -> ConfigLanguageServer:
    server = ConfigLanguageServer(debounce, check_config)

    @server.feature(lsp.INITIALIZED)
    def initialized(ls: ConfigLanguageServer, params: lsp.InitializedParams) -> None:
        use_position_encoding(ls.workspace.position_encoding)
        root = ls.workspace.root_path
        if root:
            ls.experiments_root = Path(root) / "experiments"  # as `modalities validate` run from the workspace
        ls.checks.submit(_warm_up)

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: ConfigLanguageServer, params: lsp.DidOpenTextDocumentParams) -> None:
        ls.changed(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: ConfigLanguageServer, params: lsp.DidChangeTextDocumentParams) -> None:
        ls.changed(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: ConfigLanguageServer, params: lsp.DidSaveTextDocumentParams) -> None:
        ls.changed(params.text_document.uri)  # files the config reads (a .pbin's header) may have changed

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: ConfigLanguageServer, params: lsp.DidCloseTextDocumentParams) -> None:
        ls.closed(params.text_document.uri)

    _register_requests(server)
    return server


def _on_a_check(server: ConfigLanguageServer, method: str, options: Any = None, default: Any = None,
                safely: bool = True):
    """Register ``answer(analysis, file, lines, params)`` for a request about a document: it gets the newest
    check that parsed the document (``default`` is the answer when there is none)."""

    def register(answer):
        async def handler(ls: ConfigLanguageServer, params):
            analysis, file, lines = await ls.analysis_for(params.text_document.uri)
            if analysis is None or analysis.compiled is None:
                return default
            return answer(analysis, file, lines, params)

        handler.__name__ = answer.__name__
        server.feature(method, options)(_answer_safely(default)(handler) if safely else handler)
        return answer

    return register


def _register_requests(server: ConfigLanguageServer) -> None:
    @server.feature(lsp.TEXT_DOCUMENT_COMPLETION,
                    lsp.CompletionOptions(trigger_characters=[" ", ".", "{", ":"], resolve_provider=False))
    @_answer_safely(default=None)
    async def completion(ls: ConfigLanguageServer, params: lsp.CompletionParams):
        analysis, _, lines = await ls.analysis_for(params.text_document.uri)
        items = features.complete(analysis, lines, params.position)  # from the text alone when nothing parsed
        return lsp.CompletionList(is_incomplete=False, items=items)

    @_on_a_check(server, lsp.TEXT_DOCUMENT_HOVER)
    def hover(analysis, file, lines, params: lsp.HoverParams):
        text = features.hover(analysis, file, lines, params.position)
        return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text)) if text else None

    @_on_a_check(server, lsp.TEXT_DOCUMENT_DEFINITION)
    def definition(analysis, file, lines, params: lsp.DefinitionParams):
        return features.definition(analysis, file, lines, params.position)

    @_on_a_check(server, lsp.TEXT_DOCUMENT_REFERENCES, default=[])
    def references(analysis, file, lines, params: lsp.ReferenceParams):
        return features.references(analysis, file, lines, params.position, params.context.include_declaration)

    @_on_a_check(server, lsp.TEXT_DOCUMENT_PREPARE_RENAME)
    def prepare_rename(analysis, file, lines, params: lsp.PrepareRenameParams):
        subject = features.rename_subject(analysis, file, lines, params.position)
        if subject is None:
            return None
        return lsp.PrepareRenamePlaceholder(range=_word_range(lines, params.position), placeholder=subject[0])

    # not answered "safely": a refused rename is an error response whose message the editor shows
    @_on_a_check(server, lsp.TEXT_DOCUMENT_RENAME, lsp.RenameOptions(prepare_provider=True), safely=False)
    def rename(analysis, file, lines, params: lsp.RenameParams):
        subject = features.rename_subject(analysis, file, lines, params.position)
        if subject is None:
            raise features.RenameError("only a top-level component can be renamed: put the cursor on its name or "
                                       "on a reference to it")
        return lsp.WorkspaceEdit(changes=features.rename(analysis, subject, params.new_name))


def _word_range(lines: list[str], where: lsp.Position) -> lsp.Range:
    import re

    from modalities.lsp.text import character_column, position

    text = lines[where.line] if where.line < len(lines) else ""
    column = character_column(text, where.character)
    start = column - len(re.search(r"[\w\-]*$", text[:column]).group(0))
    end = column + len(re.match(r"[\w\-]*", text[column:]).group(0))
    return lsp.Range(start=position(lines, where.line, start), end=position(lines, where.line, end))


def _warm_up() -> None:
    """Load the registry and the compiler's stages before the first document arrives."""
    from modalities.config import graph, validate  # noqa: F401
    from modalities.registry import default_registry

    default_registry()


def serve(debounce: float = DEFAULT_DEBOUNCE_SECONDS) -> None:
    """Speak LSP over stdin/stdout until the editor says exit. Whatever else the process prints (a plugin's or a
    config class's print()) goes to stderr: stdout carries the protocol only."""
    import sys

    protocol_in, protocol_out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr
    create_server(debounce).start_io(protocol_in, protocol_out)
