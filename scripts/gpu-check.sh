#!/usr/bin/env bash
# The GPU check of the GPU issue, in two halves (the GPU machine has no Rust
# toolchain and no network; the machine with cargo has no GPU):
#
#   scripts/gpu-check.sh prepare      # here: build the CUDA binary (scripts/build-cuda.sh),
#                                     # strip it, copy it and the shared workspaces into
#                                     # .gpu-check/ (git-ignored; carry it to the GPU machine)
#   scripts/gpu-check.sh run [OUTDIR] # on the GPU machine: every check below, results in OUTDIR
#
# `run` does, with a time limit on each step:
#   1. the device (nvidia-smi) and the CPU count;
#   2. `gradfit selftest` on the built-in models and on every shared workspace
#      with its signal patch (comparisons with the CPU, evaluation and toy
#      benchmarks), each under 60 s;
#   3. toys on the CPU (all cores) and on the GPU (GRADFIT_GPU_ROUTE=gpu) for
#      every workspace, timed;
#   4. `fit`, `scan` and `impacts --method refit` with --device cpu and
#      --device cuda (the default routing), timed;
#   5. Nsight Compute on the fit and evaluation kernels of tttt toys, where ncu exists;
# and writes OUTDIR/gpu-check.md (the tables for docs/gpu.md),
# OUTDIR/gpu-check.json (every number) and OUTDIR/run.log.
#
# Rehearsal without a GPU: GPU_CHECK_DEVICE=cuda-emu GPU_CHECK_SCALE=small
# GPU_CHECK_BIN=target/debug/gradfit (a cuda-emu build) scripts/gpu-check.sh run /tmp/gc
# Environment: GPU_CHECK_DIR (default .gpu-check), GPU_CHECK_WS (workspaces
# to prepare from; default ../shared/workspaces), GPU_CHECK_ONLY (space-separated
# step names: selftest toys commands ncu, or selftest-MODEL for one model's
# selftest, MODEL one of builtins sbottom staus tttt offshell; default all).
set -uo pipefail
cd "$(dirname "$0")/.."
DIR=${GPU_CHECK_DIR:-.gpu-check}
mode=${1:-}

prepare() {
    set -e
    local ws=${GPU_CHECK_WS:-../shared/workspaces}
    [ -d "$ws" ] || { echo "error: no workspaces at $ws (set GPU_CHECK_WS)" >&2; exit 2; }
    scripts/build-cuda.sh
    rm -rf "$DIR"
    mkdir -p "$DIR/ws"
    cp target/release/gradfit "$DIR/gradfit"
    strip "$DIR/gradfit" 2>/dev/null || true
    cp "$ws"/*.json "$DIR/ws/"
    cp scripts/gpu_check_report.py "$DIR/"
    git rev-parse --short HEAD > "$DIR/commit.txt"
    grep -qx "/$DIR/" .git/info/exclude 2>/dev/null || echo "/$DIR/" >> .git/info/exclude
    du -sh "$DIR"
    echo "prepared $DIR at $(cat "$DIR/commit.txt"); on the GPU machine: scripts/gpu-check.sh run \$OUT"
}

# step NAME LIMIT_S CMD...: run CMD with a time limit, log it, record rc and seconds
step() {
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s): $*" | tee -a "$LOG"
    local t0 t1 rc
    t0=$(date +%s.%N)
    timeout "$limit" "$@" > "$RES/$name.out" 2> "$RES/$name.err"
    rc=$?
    t1=$(date +%s.%N)
    tail -n 40 "$RES/$name.err" >> "$LOG"
    local secs
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    printf '%s\t%s\t%s\n' "$name" "$rc" "$secs" >> "$RES/steps.tsv"
    echo "   rc=$rc seconds=$secs" | tee -a "$LOG"
}

wants() { [ -z "${GPU_CHECK_ONLY:-}" ] || [[ " $GPU_CHECK_ONLY " == *" $1 "* ]]; }

run() {
    local out=${1:-gpu-check-out}
    mkdir -p "$out"
    out=$(cd "$out" && pwd)
    RES=$(mktemp -d)
    LOG="$out/run.log"
    : > "$LOG"
    local bin=${GPU_CHECK_BIN:-$DIR/gradfit}
    local dev=${GPU_CHECK_DEVICE:-cuda}
    local ws=${GPU_CHECK_WSDIR:-$DIR/ws}
    local small=0
    [ "${GPU_CHECK_SCALE:-}" = small ] && small=1
    [ -x "$bin" ] || { echo "error: no gradfit binary at $bin (run prepare first)" >&2; exit 2; }
    echo "== gpu-check at $(cat "$DIR/commit.txt" 2>/dev/null || git rev-parse --short HEAD 2>/dev/null), $(date -u)" | tee -a "$LOG"
    (nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || echo "no nvidia-smi") | tee "$RES/device.txt" >> "$LOG"
    nproc | tee "$RES/nproc.txt" >> "$LOG"

    # name, workspace, patch, selftest options, toys per hypothesis on the GPU / CPU
    local models=(
        "sbottom|atlas-susy-2018-31-sbottom-regionA|--toys 300 --bench-toys 5000|20000"
        "staus|atlas-susy-2018-04-staus|--toys 100 --bench-toys 1000|2000"
        "tttt|atlas-tttt|--toys 100 --bench-toys 2000|2000"
        "offshell|atlas-susy-2019-09-3l-offshell|--toys 50 --sample-toys 500 --bench-toys 500|200"
    )
    if wants selftest || wants selftest-builtins; then
        if [ $small = 1 ]; then
            step selftest-builtins 600 "$bin" selftest --device "$dev" --json --points 2 --toys 20 --sample-toys 50 --bench-sizes 1,100 --bench-toys 20
        else
            step selftest-builtins 60 "$bin" selftest --device "$dev" --json
        fi
    fi
    for m in "${models[@]}"; do
        IFS='|' read -r name base opts ntoys <<< "$m"
        local spec="$ws/$base.json"
        local patch=()
        if [ -f "$ws/$base.signal-patch.json" ]; then
            spec="$spec,$ws/$base.signal-patch.json"
            patch=(-p "$ws/$base.signal-patch.json")
        fi
        [ -f "$ws/$base.json" ] || { echo "   skip $name: no $ws/$base.json" | tee -a "$LOG"; continue; }
        if [ $small = 1 ]; then
            opts="--points 2 --toys 10 --sample-toys 20 --bench-sizes 1,50 --bench-toys 10"
            ntoys=20
        fi
        if wants selftest || wants "selftest-$name"; then
            # shellcheck disable=SC2086
            step "selftest-$name" "$([ $small = 1 ] && echo 1200 || echo 60)" "$bin" selftest --device "$dev" --json --no-examples $opts "$spec"
        fi
        if wants toys; then
            step "toys-cpu-$name" 120 "$bin" toys "$ws/$base.json" "${patch[@]}" --mu 1 --toys "$ntoys" --seed 7 --device cpu -o "$RES/toys-cpu-$name.json"
            step "toys-gpu-$name" 60 env GRADFIT_GPU_ROUTE=gpu "$bin" toys "$ws/$base.json" "${patch[@]}" --mu 1 --toys "$ntoys" --seed 7 --device "$dev" -o "$RES/toys-gpu-$name.json"
        fi
        if wants commands; then
            for d in cpu "$dev"; do
                local tag=${d%%:*}
                step "fit-$tag-$name" 60 "$bin" fit "$ws/$base.json" "${patch[@]}" --device "$d" --json
                step "scan-$tag-$name" 120 "$bin" scan "$ws/$base.json" "${patch[@]}" --device "$d" --json
                step "impacts-$tag-$name" 180 "$bin" impacts "$ws/$base.json" "${patch[@]}" --method refit --device "$d" --json
            done
        fi
    done
    if wants ncu && command -v ncu > /dev/null && [ "$dev" = cuda ] && [ -f "$ws/atlas-tttt.json" ]; then
        step ncu-tttt 60 env GRADFIT_GPU_ROUTE=gpu ncu --clock-control none --target-processes all \
            -k 'regex:gf_fit_iterate|gf_eval_kernel' --launch-skip 4 --launch-count 3 \
            --section SpeedOfLight --section Occupancy --section LaunchStats --section MemoryWorkloadAnalysis \
            "$bin" toys "$ws/atlas-tttt.json" --mu 1 --toys 200 --seed 7 --device cuda -o "$RES/ncu-toys.json"
        cp "$RES/ncu-tttt.out" "$out/ncu.txt" 2>/dev/null
    fi
    python3 "$(dirname "$bin")/gpu_check_report.py" "$RES" "$out" 2>> "$LOG" || python3 scripts/gpu_check_report.py "$RES" "$out" 2>> "$LOG"
    echo "== done $(date -u); results in $out" | tee -a "$LOG"
}

case "$mode" in
    prepare) prepare ;;
    run) run "${2:-}" ;;
    *)
        echo "usage: scripts/gpu-check.sh prepare | run [OUTDIR]" >&2
        exit 2
        ;;
esac
