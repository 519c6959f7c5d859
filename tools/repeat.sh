#!/usr/bin/env bash
# Runs a command N times and counts the failures, keeping each failed run's output: for rare, load-dependent
# failures such as a torchrun worker aborting at exit. "{port}" in the command becomes a fresh port per run and
# "{dir}" a fresh folder, so several loops can run side by side (as pytest-xdist does in CI).
#
#   tools/repeat.sh 40 python -m torch.distributed.run --nproc_per_node 2 --master_port {port} \
#       tests/optim/fsdp2_clipping_worker.py {dir}
set -u
runs=${1:?usage: tools/repeat.sh N COMMAND...}; shift
failures=0
for i in $(seq 1 "$runs"); do
  dir=$(mktemp -d "${TMPDIR:-/tmp}/repeat.XXXXXX")
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cmd=("${@//\{dir\}/$dir}"); cmd=("${cmd[@]//\{port\}/$port}")
  if "${cmd[@]}" > "$dir/output.log" 2>&1; then
    rm -rf "$dir"
  else
    failures=$((failures + 1))
    echo "run $i failed: $dir/output.log"
  fi
done
echo "$failures of $runs runs failed"
