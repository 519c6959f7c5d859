import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def write_config(tmp_path):
    def write(text: str, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "modalities", *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=120
    )


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def toy_registry():
    from modalities.registry import default_registry
    from tests.config.toy_components import register_toys

    return register_toys(default_registry().copy())


@pytest.fixture
def compile_yaml(write_config, toy_registry):
    from modalities.config.compiler import compile_file

    def compile_(text: str, **kw):
        return compile_file(write_config(text), toy_registry, **kw)

    return compile_


def provenance_comments(printed: str) -> dict[str, str]:
    """The output of `validate --print-resolved --provenance`: dotted path of each commented value -> comment."""
    comments, stack = {}, []
    for line in printed.splitlines():
        indent = len(line) - len(line.lstrip())
        key, _, rest = line.strip().partition(":")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if "#" in rest:
            comments[".".join([k for _, k in stack] + [key])] = rest.split("#", 1)[1].strip()
        else:
            stack.append((indent, key))
    return comments
