"""How the `modalities` program ends: a process that started a process group skips interpreter finalization
(torch's gloo threads can abort it there, see exit_process) but still flushes its output and keeps its status."""

import subprocess
import sys

import pytest

from tests.training.conftest import subprocess_env

PROGRAM = """
import atexit, sys
from modalities.cli.main import run_as_program
if {start_group}:
    from modalities.training.distributed import ensure_process_group
    ensure_process_group("cpu")
atexit.register(lambda: print("finalized", flush=True))
print("written before exit", end="")  # left in the buffer: exit_process must flush it
sys.argv = ["modalities", *{argv!r}]
run_as_program()
"""


def _run(start_group: bool, argv: list[str]) -> subprocess.CompletedProcess:
    program = PROGRAM.format(start_group=start_group, argv=argv)
    return subprocess.run([sys.executable, "-c", program], env=subprocess_env(), capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("argv, status", [(["components", "optimizer/adam_w"], 0), (["components", "nope/x"], 1)])
def test_a_process_with_a_process_group_skips_finalization_but_keeps_output_and_status(argv, status):
    result = _run(True, argv)
    assert result.returncode == status, result.stderr[-2000:]
    assert "written before exit" in result.stdout
    assert "finalized" not in result.stdout  # atexit handlers belong to finalization, which was skipped


def test_other_commands_exit_normally():
    result = _run(False, ["components", "optimizer/adam_w"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "written before exit" in result.stdout and "finalized" in result.stdout


def test_a_bug_is_shown_as_a_traceback_and_exits_1():
    program = (
        "import modalities.cli.main as cli\n"
        "from modalities.training.distributed import ensure_process_group\n"
        "ensure_process_group('cpu')\n"
        "def broken():\n"
        "    raise ZeroDivisionError('a bug')\n"
        "cli.main = broken\n"
        "cli.run_as_program()\n"
    )
    result = subprocess.run([sys.executable, "-c", program], env=subprocess_env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ZeroDivisionError: a bug" in result.stderr
