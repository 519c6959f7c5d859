#!/usr/bin/env bash
# A fresh drawing of the four areas, each area's first score recorded in docs/testing.md before its survivors are
# shown (see "A drawing is scored once" there); `python tools/mutation.py parallel --max-per-file 5 --seed fresh
# --record --jobs 2` for the parallelism area, which trains on CPU ranks and takes about 30 minutes. Extra
# arguments go to tools/mutation.py, e.g. tools/mutation.sh --max-per-file 20
set -euo pipefail
cd "$(dirname "$0")/.."
exec python tools/mutation.py compiler data training checkpointing --max-per-file 8 --seed fresh --record --jobs 2 "$@"
