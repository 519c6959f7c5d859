"""End to end with a real editor: headless Neovim opens a config, starts `modalities lsp` as its language
server, and the diagnostics Neovim holds are read back (tests/lsp/nvim_diagnostics.lua)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lsp.conftest import QUICKSTART, line_of, server_env

SCRIPT = Path(__file__).with_name("nvim_diagnostics.lua")


@pytest.mark.skipif(shutil.which("nvim") is None, reason="Neovim is not installed (.ci/run installs it)")
def test_neovim_shows_the_servers_diagnostics_at_their_lines(workspace, tmp_path):
    broken = QUICKSTART.replace("    max_norm: 1.0\n", "    max_nrom: 1.0\n", 1)
    config = workspace / "configs" / "neovim.yaml"
    config.write_text(broken)
    out = tmp_path / "diagnostics.json"
    env = {**server_env(), "LSP_CONFIG": str(config), "LSP_OUT": str(out), "LSP_PYTHON": sys.executable,
           "XDG_STATE_HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "HOME": str(tmp_path)}
    done = subprocess.run(["nvim", "--headless", "--clean", "-c", f"luafile {SCRIPT}"], cwd=workspace, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert out.is_file(), done.stdout + done.stderr
    result = json.loads(out.read_text())
    assert result["arrived"] is True
    [diagnostic] = result["diagnostics"]
    assert (diagnostic["lnum"], diagnostic["col"]) == (line_of(broken, "max_nrom"), 4)
    assert diagnostic["severity"] == 1  # vim.diagnostic.severity.ERROR
    assert diagnostic["source"] == "modalities"
    assert "unknown field 'max_nrom'" in diagnostic["message"] and "did you mean 'max_norm'?" in diagnostic["message"]
