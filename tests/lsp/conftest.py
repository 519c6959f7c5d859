"""`modalities lsp` driven over stdio as an editor drives it (tests/schema/lsp_client.py speaks the protocol).

The workspace is a temporary folder holding a copy of the quick start under configs/ and the repository's data/
beside it (a link), so the config's relative data paths hold and `modalities validate` can be run on exactly
the text the server was given.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.schema.lsp_client import LspClient

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = (REPO / "configs" / "quickstart.yaml").read_text()


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["MODALITIES_EXPERIMENT_ID"] = "lsp-test"
    return env


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lsp_workspace")
    (root / "configs").mkdir()
    (root / "data").symlink_to(REPO / "data", target_is_directory=True)
    return root


def start_server(workspace: Path, *extra: str, general_capabilities: dict | None = None) -> LspClient:
    log = open(workspace / f"server{len(extra)}.log", "w")  # noqa: SIM115 - kept open for the server's life
    return LspClient(workspace, {}, command=[sys.executable, "-m", "modalities", "lsp", *extra], env=server_env(),
                     stderr=log, general_capabilities=general_capabilities)


@pytest.fixture(scope="module")
def server(workspace):
    client = start_server(workspace)
    yield client
    client.close()


def line_of(text: str, needle: str, after: int = 0) -> int:
    """The 0-based line of the first occurrence of ``needle`` at or after line ``after``."""
    lines = text.splitlines()
    return next(i for i in range(after, len(lines)) if needle in lines[i])


def validate_json(workspace: Path, name: str, text: str) -> list[dict]:
    """What `modalities validate --format json` reports for ``text`` saved as configs/NAME in the workspace."""
    path = workspace / "configs" / name
    path.write_text(text)
    done = subprocess.run([sys.executable, "-m", "modalities", "validate", str(path), "--format", "json",
                           "--experiments-root", str(workspace / "experiments")],
                          capture_output=True, text=True, cwd=workspace, env=server_env(), timeout=120, check=False)
    return json.loads(done.stdout)


def as_validate_reports(diagnostics: list[dict]) -> list[tuple]:
    """LSP diagnostics as (line, column, severity, code, message) in validate's numbering (1-based)."""
    severity = {1: "error", 2: "warning", 3: "note"}
    return sorted((d["range"]["start"]["line"] + 1, d["range"]["start"]["character"] + 1, severity[d["severity"]],
                   d.get("code") or "", d["message"]) for d in diagnostics)


def validate_reports(reports: list[dict]) -> list[tuple]:
    """validate's JSON as the same tuples; the message as validate prints it (path: message, then the hint)."""
    return sorted((r["line"], r["column"], r["severity"], r["code"] or "",
                   (f"{r['path']}: " if r["path"] else "") + r["message"] + (f"\nhint: {r['hint']}" if r["hint"] else ""))
                  for r in reports)


def apply_edits(text: str, edits: list[dict]) -> str:
    """Apply LSP text edits (ranges in the original text; ASCII, so characters are columns) from last to first."""
    lines = text.split("\n")
    for edit in sorted(edits, key=lambda e: (e["range"]["start"]["line"], e["range"]["start"]["character"]),
                       reverse=True):
        start, end = edit["range"]["start"], edit["range"]["end"]
        assert start["line"] == end["line"]
        line = lines[start["line"]]
        lines[start["line"]] = line[: start["character"]] + edit["newText"] + line[end["character"] :]
    return "\n".join(lines)
