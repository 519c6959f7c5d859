#!/usr/bin/env bash
# Mutation score of the four areas (see docs/testing.md; `python tools/mutation.py parallel --max-per-file 5`
# for the parallelism area, which trains on CPU ranks and takes about 30 minutes); extra arguments go to
# tools/mutation.py,
# e.g. tools/mutation.sh --max-per-file 20 --seed 2
set -euo pipefail
cd "$(dirname "$0")/.."
exec python tools/mutation.py compiler data training checkpointing --max-per-file 8 --seed 1 --jobs 2 "$@"
