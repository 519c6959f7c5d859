"""How long `modalities lsp` takes from a change of the text to the diagnostics of that text, on the quick start.

    python tools/bench/bench_lsp.py [--config configs/quickstart.yaml] [--edits 40]

The server runs as an editor starts it (`python -m modalities lsp`, LSP over stdio) and is spoken to by the
tests' client (tests/schema/lsp_client.py). After the first check of the opened config, each edit is one
incremental change (a reference misspelt, then put back, so the diagnostics alternate), sent alone with a pause
after it, as a person's edit; the time runs from writing the change to the pipe until the publishDiagnostics
for that version is read back. Then a burst: characters typed 20 ms apart, timed from the last of them. The
baseline measured in the same run is a cold `modalities validate` of the same file (a separate process each),
what a user without the server waits for after saving.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.schema.lsp_client import LspClient


def change(client: LspClient, uri: str, version: int, line: int, start: int, end: int, text: str) -> None:
    client.notify("textDocument/didChange", {
        "textDocument": {"uri": uri, "version": version},
        "contentChanges": [{"range": {"start": {"line": line, "character": start},
                                      "end": {"line": line, "character": end}}, "text": text}],
    })


def timed_edits(client: LspClient, uri: str, lines: list[str], edits: int) -> list[float]:
    line = next(i for i, text in enumerate(lines) if text.strip() == "instance_key: model_raw")
    column = lines[line].index("model_raw") + len("model_ra")
    times = []
    for version in range(2, edits + 2):
        letter = "x" if version % 2 == 0 else "w"  # model_rax (an error), then model_raw again
        start = time.perf_counter()
        change(client, uri, version, line, column, column + 1, letter)
        client.diagnostics_of_version(uri, version)
        times.append(time.perf_counter() - start)
        time.sleep(0.2)
    return times


def typed_burst(client: LspClient, uri: str, lines: list[str], version: int, characters: int = 10) -> float:
    line = next(i for i, text in enumerate(lines) if text.strip().startswith("dataloader_tag: train"))
    column = len(lines[line])
    for i in range(characters):
        version += 1
        start = time.perf_counter()
        change(client, uri, version, line, column + i, column + i, "s")
        time.sleep(0.02)
    client.diagnostics_of_version(uri, version)
    return time.perf_counter() - start - 0.02


def cold_validate(config: Path, repeat: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cmd = [sys.executable, "-m", "modalities", "validate", str(config)]
    subprocess.run(cmd, capture_output=True, cwd=REPO, env=env, check=False)  # bytecode written
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, cwd=REPO, env=env, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "quickstart.yaml")
    parser.add_argument("--edits", type=int, default=40)
    args = parser.parse_args()
    config = args.config.resolve()
    text = config.read_text()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    client = LspClient(REPO, {}, command=[sys.executable, "-m", "modalities", "lsp"], env=env)
    try:
        start = time.perf_counter()
        uri = client.open(config, text)
        client.diagnostics_of_version(uri, 1)
        first = time.perf_counter() - start
        times = timed_edits(client, uri, text.splitlines(), args.edits)
        burst = typed_burst(client, uri, text.splitlines(), args.edits + 1)
    finally:
        client.close()
    validate = cold_validate(config, 7)
    ms = sorted(t * 1000 for t in times)
    print(f"config: {config.relative_to(REPO) if config.is_relative_to(REPO) else config}")
    print(f"first check after open (server just started): {first * 1000:7.1f} ms")
    print(f"change -> diagnostics, {len(ms)} edits: median {statistics.median(ms):6.1f} ms, "
          f"p90 {ms[int(0.9 * (len(ms) - 1))]:6.1f} ms, max {ms[-1]:6.1f} ms")
    print(f"last of 10 characters typed 20 ms apart -> diagnostics: {burst * 1000:6.1f} ms")
    print(f"cold `modalities validate` (median of 7): {validate * 1000:7.1f} ms; "
          f"ratio to the median re-check: {validate * 1000 / statistics.median(ms):.1f}x")


if __name__ == "__main__":
    main()
