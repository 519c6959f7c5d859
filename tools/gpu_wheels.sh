#!/usr/bin/env bash
# Download, HERE (where PyPI is reachable), the wheels that tools/gpu_check.sh installs on a bare GPU machine
# that has no network: the dependencies of modalities that the machine's Python (3.12, x86_64, with torch,
# transformers, tokenizers, numpy, networkx, rich, pyyaml, sentencepiece, safetensors already installed) lacks,
# with each missing transitive dependency. Versions are the ones this project is tested with.
#
#   bash tools/gpu_wheels.sh            # -> ./.whl/*.whl (git-ignored; name `.whl` in the device run's carry)
#
# tools/gpu_check.sh installs a wheel only where the machine lacks its distribution or has an older version, so
# carrying one too many is harmless. typing_extensions is carried because pydantic 2.13 needs >= 4.14.1 and the
# GPU image's version is not known.
set -euo pipefail
cd "$(dirname "$0")/.."

# name==version, one per line: pydantic and its closure, ruamel.yaml (+ its C parser, optional but 6x faster)
WHEELS=(
    "pydantic==2.13.4"
    "pydantic-core==2.46.4"
    "annotated-types==0.7.0"
    "typing-inspection==0.4.2"
    "typing-extensions==4.16.0"
    "ruamel.yaml==0.19.1"
    "ruamel.yaml.clib==0.2.15"
)

DEST=.whl
mkdir -p "$DEST"
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
for spec in "${WHEELS[@]}"; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --abi cp312 --abi abi3 --abi none "${PLATFORMS[@]}" --platform any -d "$DEST" "$spec"
done
# One version of each distribution: two wheels of one name would stop the whole install there.
python3 - "$DEST" <<'EOF'
import collections, pathlib, sys
names = collections.Counter(p.name.split("-")[0].lower().replace("_", "-").replace(".", "-")
                            for p in pathlib.Path(sys.argv[1]).glob("*.whl"))
twice = [n for n, c in names.items() if c > 1]
if twice:
    sys.exit(f"{sys.argv[1]} holds more than one wheel of {', '.join(twice)}: remove the older ones")
EOF
ls -l "$DEST"
du -sh "$DEST"
