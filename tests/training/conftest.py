import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "training" / "tiny.yaml"
PLUGIN = "tests.training.standins_plugin"


def read_results(experiment_folder: Path, tag: str = "train") -> dict[int, float]:
    """step -> loss of that step, from the JSONL results file."""
    losses = {}
    for line in (experiment_folder / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "event" in record:  # a resume marker: what follows replaces later steps
            continue
        if record["dataloader_tag"] == tag:
            losses[record["num_train_steps_done"]] = record["losses"].get("train loss last", record["losses"].get("loss avg"))
    return losses


def train_in_process(tmp_path: Path, experiment_id: str, *extra: str, config: Path | list[Path] = TINY) -> int:
    """`modalities train --plugin ...` in this process, on a copy of the process registry that is thrown away
    afterwards, so the stand-ins do not leak into other tests (schema freshness, duplicate registrations).
    ``config``: a file, or several (merged left to right)."""
    import sys

    import modalities.registry as registry_module
    from modalities.cli.main import main

    saved = registry_module.default_registry()
    registry_module._default = saved.copy()
    sys.modules.pop(PLUGIN, None)  # so that importing the plugin registers into the copy
    try:
        files = [str(c) for c in config] if isinstance(config, list) else [str(config)]
        return main(["train", *files, "--plugin", PLUGIN, "--experiments-root", str(tmp_path),
                     "--experiment-id", experiment_id, *extra])
    finally:
        registry_module._default = saved
        sys.modules.pop(PLUGIN, None)


def run_in_process(nproc: int, *args: str, timeout: int | None = None) -> subprocess.CompletedProcess:
    """`modalities ARGS` in this process, for a run of one rank: what ``run_torchrun(1, ...)`` runs, without the
    ~10 s of CPU that a torchrun launcher and a fresh worker spend importing torch (without torchrun the run starts
    its one-rank process group in memory). For one-process runs that tests compare with or resume. Returns what
    subprocess.run would (exit code, stdout, stderr); ``timeout`` is not enforced here. As in train_in_process, a
    ``--plugin`` registers into a copy of the registry that is thrown away afterwards."""
    import contextlib
    import io

    import modalities.registry as registry_module
    from modalities.cli.main import main

    assert nproc == 1, "a run of several ranks needs torchrun"
    out, err = io.StringIO(), io.StringIO()
    saved = registry_module.default_registry()
    registry_module._default = saved.copy()
    sys.modules.pop(PLUGIN, None)  # so that importing the plugin registers into the copy
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        registry_module._default = saved
        sys.modules.pop(PLUGIN, None)
    return subprocess.CompletedProcess(["modalities", *args], code, out.getvalue(), err.getvalue())


def standins_registry():
    """A copy of the process registry with the stand-in components, for building them through `Main`."""
    from modalities.registry import default_registry
    from tests.training.standins import STANDINS

    registry = default_registry().copy()
    for key, variant, builder, config in STANDINS:
        registry.register(component_key=key, variant_key=variant, custom_component=builder, custom_config=config)
    return registry


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env(**extra: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def torchrun_cmd(nproc: int, *args: str, nnodes: int = 1, node_rank: int | None = None, port: int | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"]
    if nnodes == 1:
        cmd += ["--standalone"]
    else:
        cmd += [f"--nnodes={nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=loopback",
                "--max-restarts=0"]
    return cmd + ["-m", "modalities", *args]


@pytest.fixture
def run_torchrun():
    def run(nproc: int, *args: str, timeout: int = 120, **env):
        return subprocess.run(torchrun_cmd(nproc, *args), cwd=REPO, env=subprocess_env(**env),
                              capture_output=True, text=True, timeout=timeout)
    return run
