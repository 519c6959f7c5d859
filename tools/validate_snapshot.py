"""What `modalities validate` prints for every shipped config, saved and compared: a change meant to make
validate faster (or to move code under it) must leave its output byte for byte the same.

    python tools/validate_snapshot.py save /tmp/before.json     # on the code before the change
    python tools/validate_snapshot.py check /tmp/before.json    # on the code after it: exit 1 on any difference

Each config under configs/ and tests/compat/ is validated as a separate process in text and JSON format, and
so are a few broken copies of the quick start (a reference cycle, an unknown reference, a misspelt field, a
contract error, broken YAML), so the error paths are compared too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# (name, the text to replace in configs/quickstart.yaml, its replacement)
BROKEN_QUICKSTART = [
    ("cycle", "      instance_key: fsdp_model\n", "      instance_key: optimizer\n"),
    ("unknown_reference", "      instance_key: model_raw\n", "      instance_key: model_rav\n"),
    ("misspelt_field", "    max_norm: 1.0\n", "    max_nrom: 1.0\n"),
    ("contract", "    vocab_size: 2048\n", "    vocab_size: 100\n"),
    ("yaml_syntax", "    n_layer: 2\n", "    n_layer: [2\n"),
    ("unused", "dp_degree:\n  component_key", (
        "spare_mesh:\n  component_key: device_mesh\n  variant_key: default\n"
        "  config: {device_type: cpu, data_parallel_shard_degree: -1, world_size: 1}\ndp_degree:\n  component_key"
    )),
]


def configs() -> list[Path]:
    found = sorted(p for folder in ("configs", "tests/compat") for p in (REPO / folder).rglob("*.yaml"))
    quickstart = (REPO / "configs" / "quickstart.yaml").read_text()
    for name, old, new in BROKEN_QUICKSTART:
        assert old in quickstart, f"{name}: the quick start no longer has {old!r}"
        path = REPO / "configs" / f".snapshot_{name}.yaml"  # beside the original: relative data paths still hold
        path.write_text(quickstart.replace(old, new, 1))
        found.append(path)
    return found


def outputs(tmp: Path) -> dict[str, dict]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MODALITIES_EXPERIMENT_ID": "snapshot", "NO_COLOR": "1"}
    results = {}
    paths = configs()
    try:
        for path in paths:
            for fmt in ("text", "json"):
                cmd = [sys.executable, "-m", "modalities", "validate", str(path.relative_to(REPO)), "--format", fmt,
                       "--experiments-root", str(tmp)]
                done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, check=False)
                results[f"{path.relative_to(REPO)} [{fmt}]"] = {
                    "rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr
                }
    finally:
        for path in paths:
            if path.name.startswith(".snapshot_"):
                path.unlink()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("save", "check"))
    parser.add_argument("file", type=Path)
    args = parser.parse_args()
    # one fixed folder for experiments (nothing is written there): paths under it may appear in messages
    now = outputs(Path(tempfile.gettempdir()) / "validate_snapshot_experiments")
    if args.mode == "save":
        args.file.write_text(json.dumps(now, indent=1, sort_keys=True))
        print(f"saved validate's output for {len(now)} runs to {args.file}")
        return 0
    before = json.loads(args.file.read_text())
    differ = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    for key in differ:
        print(f"DIFFERS: {key}")
        for part in ("rc", "stdout", "stderr"):
            old, new = (before.get(key) or {}).get(part), (now.get(key) or {}).get(part)
            if old != new:
                print(f"  {part} before: {old!r}\n  {part} after:  {new!r}")
    print(f"{len(now) - len(differ)} of {len(now)} runs identical")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
