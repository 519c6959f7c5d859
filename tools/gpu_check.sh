#!/usr/bin/env bash
# One command that proves the GPU path on a bare machine with one GPU and no network (at most 8 minutes on one
# H200, installs included), recording what it finds in DIR/report.json and DIR/report.md:
#
#   bash tools/gpu_wheels.sh                     # once, where PyPI is reachable: ./.whl (carry it along)
#   bash tools/gpu_check.sh [--out DIR]          # on the GPU machine, from anywhere
#   bash tools/gpu_check.sh --dry-run [--out DIR]   # the same steps on CPU with tiny sizes (tests run this)
#   bash tools/gpu_check.sh --only quickstart,fsdp1  # a second, shorter lease: these steps (install always runs)
#
# DIR defaults to $OUT when set, else ./gpu_check. DIR gets four files: report.json, report.md, logs.txt (every
# step's output under a header) and nvidia-smi.txt. Scratch (experiments, data, checkpoints) goes to a temporary
# folder that is removed at the end (GPU_CHECK_KEEP_WORK=1 keeps it).
#
# Steps, each in its own process under `timeout`, so one failure or hang does not stop the rest:
#   install      the carried wheels the machine lacks (pydantic, ruamel.yaml, ...) into a folder on PYTHONPATH
#   environment  versions (python, torch, CUDA, cuDNN, NCCL, driver), the GPU, every module importing
#   quickstart   configs/quickstart.yaml on CUDA with bf16 mixed precision, its loss against the CPU run's
#   fsdp1        the reference's config_lorem_ipsum_long_fsdp1.yaml and its warm start, torchrun on 1 rank, NCCL
#   mfu_dense    tokens/s and MFU of a ~1B Llama-shaped model/gpt2, FSDP2 + torch.compile + bf16
#                (mfu_dense_fallback: once more, uncompiled or with activation checkpointing, if that failed)
#   mfu_moe      the same for model/moe of similar active size (tools/gpu_check/moe_mfu.yaml), if registered
#   cp_tp        context and tensor parallelism: not possible on one GPU, said so
# The exit code is 0 when no step failed.
set -u
set -o pipefail

usage() { sed -n '2,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

DRY_RUN=0
OUT_DIR=""
ONLY=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --out) [ $# -ge 2 ] || { echo "--out needs a folder" >&2; exit 2; }; OUT_DIR="$2"; shift ;;
        --out=*) OUT_DIR="${1#--out=}" ;;
        --only) [ $# -ge 2 ] || { echo "--only needs steps, e.g. quickstart,fsdp1" >&2; exit 2; }; ONLY="$2"; shift ;;
        --only=*) ONLY="${1#--only=}" ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 2
OUT_DIR="${OUT_DIR:-${OUT:-$REPO/gpu_check}}"
mkdir -p "$OUT_DIR" || exit 2
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")" || exit 2
mkdir -p "$WORK/logs" "$WORK/results"
: > "$WORK/steps.tsv"
LOGS="$OUT_DIR/logs.txt"
: > "$LOGS"
SITE="$WORK/site"

PY="${GPU_CHECK_PYTHON:-python3}"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$REPO:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false
MODE_ARGS=()
[ "$DRY_RUN" = 1 ] && MODE_ARGS=(--dry-run)

# Time: the whole check ends within BUDGET_S; a step gets its cap, or what is left after the caps of the steps
# still to come (so a slow step cannot starve the ones after it of their minimum).
# The dry run's limits are 4 times as long (GPU_CHECK_DRY_RUN_SLACK): on a busy 2-core CI machine its CPU steps
# are slow, and the test that runs it must not depend on the machine's speed.
START_S=$SECONDS
declare -A CAP=([install]=40 [environment]=60 [quickstart]=100 [fsdp1]=120 [mfu_dense]=190 [mfu_dense_fallback]=150
                [mfu_moe]=110 [cp_tp]=20)
declare -A FLOOR=([install]=20 [environment]=30 [quickstart]=60 [fsdp1]=60 [mfu_dense]=120 [mfu_moe]=60 [cp_tp]=10)
BUDGET_S="${GPU_CHECK_BUDGET_S:-470}"
if [ "$DRY_RUN" = 1 ]; then
    SLACK="${GPU_CHECK_DRY_RUN_SLACK:-4}"
    BUDGET_S="${GPU_CHECK_BUDGET_S:-$((470 * SLACK))}"
    for s in "${!CAP[@]}"; do CAP[$s]=$((CAP[$s] * SLACK)); done
    for s in "${!FLOOR[@]}"; do FLOOR[$s]=$((FLOOR[$s] * SLACK)); done
fi
PLANNED=(install environment quickstart fsdp1 mfu_dense mfu_moe cp_tp)

# selected STEP: whether --only (if given) names STEP; install always runs
selected() {
    [ -z "$ONLY" ] || [ "$1" = install ] || [[ ",$ONLY," == *",$1,"* ]] || [[ ",$ONLY," == *",${1%_fallback},"* ]]
}

# limit_for STEP: seconds STEP may run now
limit_for() {
    local step="$1" later=0 seen=0 s
    for s in "${PLANNED[@]}"; do
        if [ "$seen" = 1 ] && selected "$s"; then later=$((later + ${FLOOR[$s]})); fi
        [ "$s" = "$step" ] && seen=1
    done
    local left=$((BUDGET_S - (SECONDS - START_S) - later - 5))
    local cap="${CAP[$step]}"
    echo $(( left < cap ? left : cap ))
}

# run_step STEP COMMAND...: COMMAND under timeout, its output in the step's log, appended to logs.txt
run_step() {
    local step="$1"; shift
    selected "$step" || return 0
    local limit; limit="$(limit_for "$step")"
    local log="$WORK/logs/$step.log" rc t0 t1 wall
    if [ "$limit" -lt 10 ]; then
        echo "[gpu_check] $step: skipped, no time left" | tee -a "$LOGS"
        printf '%s\t%s\t%s\t%s\n' "$step" 124 0 "$limit" >> "$WORK/steps.tsv"
        return
    fi
    echo "[gpu_check] $step: running (limit ${limit} s)"
    t0="$(date +%s.%N)"
    # the step keeps its own subprocesses 15 s inside the limit; timeout is the backstop (whole process group)
    timeout --kill-after=10 "$limit" "$@" --time-limit "$((limit - 15))" > "$log" 2>&1 < /dev/null
    rc=$?
    t1="$(date +%s.%N)"
    wall="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
    printf '%s\t%s\t%s\t%s\n' "$step" "$rc" "$wall" "$limit" >> "$WORK/steps.tsv"
    echo "[gpu_check] $step: exit $rc, ${wall} s"
    # the report so far, in case the whole command is stopped before its end
    write_report > /dev/null 2>&1
    {
        echo "=================================================================================================="
        echo "== step $step: exit $rc, ${wall} s (limit ${limit} s): $*"
        echo "=================================================================================================="
        # at most the first 2,000 and the last 8,000 lines of a step
        if [ "$(wc -l < "$log")" -gt 10000 ]; then
            head -n 2000 "$log"; echo "... ($(wc -l < "$log") lines; the middle is cut) ..."; tail -n 8000 "$log"
        else
            cat "$log"
        fi
        echo
    } >> "$LOGS"
}

write_report() {
    "$PY" tools/gpu_check/report.py --work "$WORK" --out "$OUT_DIR" --total-wall-s "$((SECONDS - START_S))" \
        --command "tools/gpu_check.sh${MODE_ARGS[*]:+ ${MODE_ARGS[*]}}" "${MODE_ARGS[@]}"
}

step_status() {  # the status a step recorded, or "missing"
    "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["status"])' "$WORK/results/$1.json" 2>/dev/null \
        || echo missing
}

STEPS_PY=(tools/gpu_check/steps.py)
echo "[gpu_check] $( [ "$DRY_RUN" = 1 ] && echo "dry run (CPU, tiny sizes)" || echo "GPU run" ); report in $OUT_DIR"

{
    echo "== nvidia-smi at the start ($(date -Is))"
    if command -v nvidia-smi > /dev/null; then
        timeout 30 nvidia-smi 2>&1
        timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv 2>&1
    else
        echo "nvidia-smi: not found$( [ "$DRY_RUN" = 1 ] && echo " (dry run on CPU)")"
    fi
} > "$OUT_DIR/nvidia-smi.txt"

run_step install "$PY" "${STEPS_PY[@]}" install --work "$WORK" --out "$OUT_DIR" --site "$SITE" "${MODE_ARGS[@]}"
run_step environment "$PY" "${STEPS_PY[@]}" environment --work "$WORK" --out "$OUT_DIR" "${MODE_ARGS[@]}"
run_step quickstart "$PY" "${STEPS_PY[@]}" quickstart --work "$WORK" --out "$OUT_DIR" "${MODE_ARGS[@]}"
run_step fsdp1 "$PY" "${STEPS_PY[@]}" fsdp1 --work "$WORK" --out "$OUT_DIR" "${MODE_ARGS[@]}"
run_step mfu_dense "$PY" "${STEPS_PY[@]}" mfu --model dense --work "$WORK" --out "$OUT_DIR" "${MODE_ARGS[@]}"
if [ "$(step_status mfu_dense)" != ok ]; then
    # a second try only where the MoE step leaves it time (it needs its floor only when model/moe exists)
    if ! "$PY" -c 'import json, sys; sys.exit(not json.load(open(sys.argv[1]))["numbers"]["model/moe registered"])' \
            "$WORK/results/environment.json" 2>/dev/null; then
        FLOOR[mfu_moe]=10
    fi
    PLANNED=(install environment quickstart fsdp1 mfu_dense mfu_dense_fallback mfu_moe cp_tp)
    FLOOR[mfu_dense_fallback]=0
    run_step mfu_dense_fallback "$PY" "${STEPS_PY[@]}" mfu --model dense --fallback --work "$WORK" --out "$OUT_DIR" \
        "${MODE_ARGS[@]}"
fi
run_step mfu_moe "$PY" "${STEPS_PY[@]}" mfu --model moe --work "$WORK" --out "$OUT_DIR" "${MODE_ARGS[@]}"
run_step cp_tp "$PY" "${STEPS_PY[@]}" cp_tp --work "$WORK" --out "$OUT_DIR" "${MODE_ARGS[@]}"

if command -v nvidia-smi > /dev/null; then
    { echo; echo "== nvidia-smi at the end ($(date -Is))"; timeout 30 nvidia-smi 2>&1; } >> "$OUT_DIR/nvidia-smi.txt"
fi

write_report
STATUS=$?
if [ "${GPU_CHECK_KEEP_WORK:-0}" = 1 ]; then
    echo "[gpu_check] scratch kept: $WORK"
else
    rm -rf "$WORK"
fi
exit "$STATUS"
