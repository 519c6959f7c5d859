"""A minimal LSP client over stdio, as an editor speaks it: drives yaml-language-server (tests/schema) and
`modalities lsp` (tests/lsp) from tests."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_JS = REPO_ROOT / "tools" / "lsp" / "node_modules" / "yaml-language-server" / "bin" / "yaml-language-server"
INSTALL_HINT = "cd tools/lsp && npm ci   (installs yaml-language-server from tools/lsp/package-lock.json)"


class LspClient:
    def __init__(self, root: Path, settings: dict[str, Any], command: list[str] | None = None,
                 env: dict[str, str] | None = None, stderr: Any = subprocess.DEVNULL,
                 general_capabilities: dict | None = None):
        if command is None and not SERVER_JS.is_file():
            raise RuntimeError(f"yaml-language-server is not installed at {SERVER_JS}; run: {INSTALL_HINT}")
        self.settings = settings
        self.proc = subprocess.Popen(
            command or ["node", str(SERVER_JS), "--stdio"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
        )
        self._next_id = 0
        self._responses: dict[int, queue.Queue] = {}
        self._diagnostics: dict[str, list[dict]] = {}
        self._versions: dict[str, Any] = {}  # uri -> the version of the document its last diagnostics were for
        self.protocol_errors: list[bytes] = []
        self._diagnostics_changed = threading.Condition()
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        self.request(
            "initialize",
            {
                "processId": None,
                "rootUri": root.as_uri(),
                "capabilities": {
                    "general": general_capabilities or {},
                    "workspace": {"configuration": True},
                    "textDocument": {
                        "completion": {"completionItem": {"snippetSupport": False}},
                        "hover": {"contentFormat": ["markdown", "plaintext"]},
                        "publishDiagnostics": {},
                    },
                },
            },
        )
        self.notify("initialized", {})
        self.notify("workspace/didChangeConfiguration", {"settings": settings})

    # --- wire ---------------------------------------------------------------------------------------------
    def _send(self, message: dict) -> None:
        body = json.dumps(message).encode()
        self.proc.stdin.write(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        self.proc.stdin.flush()

    def _read_loop(self) -> None:
        stream = self.proc.stdout
        while True:
            length = None
            while True:
                line = stream.readline()
                if not line:
                    return
                line = line.strip()
                if not line:
                    break
                name, _, value = line.decode(errors="replace").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                elif name.lower() != "content-type":
                    self.protocol_errors.append(line)  # not LSP: something else wrote to the server's stdout
            message = json.loads(stream.read(length))
            self._dispatch(message)

    def _dispatch(self, message: dict) -> None:
        if "id" in message and "method" in message:  # a request from the server
            method = message["method"]
            if method == "workspace/configuration":
                result = [self.settings.get(item.get("section", ""), None) for item in message["params"]["items"]]
            else:
                result = None
            self._send({"jsonrpc": "2.0", "id": message["id"], "result": result})
        elif "id" in message:
            self._responses.setdefault(message["id"], queue.Queue()).put(message)
        elif message.get("method") == "textDocument/publishDiagnostics":
            with self._diagnostics_changed:
                self._diagnostics[message["params"]["uri"]] = message["params"]["diagnostics"]
                self._versions[message["params"]["uri"]] = message["params"].get("version")
                self._diagnostics_changed.notify_all()

    def request(self, method: str, params: dict, timeout: float = 60.0) -> Any:
        self._next_id += 1
        request_id = self._next_id
        box = self._responses.setdefault(request_id, queue.Queue())
        self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        message = box.get(timeout=timeout)
        if "error" in message:
            raise RuntimeError(f"{method} failed: {message['error']}")
        return message.get("result")

    def notify(self, method: str, params: dict) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    # --- documents ----------------------------------------------------------------------------------------
    def open(self, path: Path, text: str, version: int = 1) -> str:
        uri = path.as_uri()
        with self._diagnostics_changed:
            self._diagnostics.pop(uri, None)
        self.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "yaml", "version": version, "text": text}},
        )
        return uri

    def change(self, uri: str, text: str, version: int) -> None:
        """Replace the whole text (as an editor may), as version ``version``."""
        with self._diagnostics_changed:
            self._diagnostics.pop(uri, None)
        self.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]},
        )

    def close_document(self, uri: str) -> None:
        self.notify("textDocument/didClose", {"textDocument": {"uri": uri}})

    def diagnostics_of_version(self, uri: str, version: int, timeout: float = 120.0) -> list[dict]:
        """The diagnostics published for ``uri`` once they are for ``version`` of it (or a later one)."""
        deadline = time.monotonic() + timeout
        with self._diagnostics_changed:
            while uri not in self._diagnostics or (self._versions.get(uri) or 0) < version:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no diagnostics for version {version} of {uri}")
                self._diagnostics_changed.wait(left)
            return self._diagnostics[uri]

    def _at(self, uri: str, line: int, character: int) -> dict:
        return {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}

    def definition(self, uri: str, line: int, character: int) -> Any:
        return self.request("textDocument/definition", self._at(uri, line, character))

    def references(self, uri: str, line: int, character: int, include_declaration: bool = False) -> list[dict]:
        params = {**self._at(uri, line, character), "context": {"includeDeclaration": include_declaration}}
        return self.request("textDocument/references", params) or []

    def rename(self, uri: str, line: int, character: int, new_name: str) -> dict:
        return self.request("textDocument/rename", {**self._at(uri, line, character), "newName": new_name})

    def diagnostics(self, uri: str, timeout: float = 60.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self._diagnostics_changed:
            while uri not in self._diagnostics:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no diagnostics for {uri}")
                self._diagnostics_changed.wait(left)
            return self._diagnostics[uri]

    def completions(self, uri: str, line: int, character: int) -> list[dict]:
        result = self.request(
            "textDocument/completion",
            {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}},
        )
        return result.get("items", []) if isinstance(result, dict) else (result or [])

    def hover(self, uri: str, line: int, character: int) -> str:
        result = self.request(
            "textDocument/hover", {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}
        )
        if not result:
            return ""
        contents = result["contents"]
        return contents["value"] if isinstance(contents, dict) else str(contents)

    def close(self) -> None:
        # Bounds of minutes, not seconds: a server that shuts down cleanly answers at once, and one still busy
        # with a check on a loaded machine must not be killed and counted as a failed shutdown.
        try:
            self.request("shutdown", {}, timeout=120)
            self.notify("exit", {})
        except Exception:
            pass
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
