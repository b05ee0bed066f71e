#!/usr/bin/env bash
# Side-by-side benchmarks of gradfit against pyhf (NumPy, JAX) and cabinetry on
# the shared workspaces. One command from a fresh clone:
#
#     bash bench/compare.sh            # full run (~30 minutes on 2 cores)
#     bash bench/compare.sh --quick    # smoke test (a few minutes)
#
# It builds gradfit (release), creates .venv-bench with pinned pyhf[jax] and
# cabinetry from PyPI, then writes bench/results.json and bench/results.md
# (copy the table into docs/benchmarks.md). GRADFIT_SHARED overrides ../shared.
set -euo pipefail
START=$(date +%s)
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SHARED="${GRADFIT_SHARED:-$ROOT/../shared}"
if [ ! -d "$SHARED/workspaces" ]; then
    echo "error: shared data not found at $SHARED" >&2
    exit 1
fi
VENV="$ROOT/.venv-bench"
PY=${PYTHON:-python3}

echo "==> building gradfit (release)" >&2
cargo build --release --quiet

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import pyhf, jax, cabinetry" 2>/dev/null; then
    echo "==> installing pyhf[jax] and cabinetry into $VENV" >&2
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet "pyhf[jax]==0.7.6" "cabinetry==0.6.0"
fi

# the whole run (build and installation included) stays under 30 minutes: the
# measurements get what is left of 29 minutes (at least 5), and peers that do
# not fit in it are skipped with a note
BUDGET=$(( 29 * 60 - ($(date +%s) - START) ))
[ "$BUDGET" -lt 300 ] && BUDGET=300
echo "==> measuring for at most ${BUDGET} s (progress on stderr)" >&2
"$VENV/bin/python" bench/compare.py run \
    --gradfit "$ROOT/target/release/gradfit" \
    --shared "$SHARED" \
    --out-json "$ROOT/bench/results.json" \
    --out-md "$ROOT/bench/results.md" \
    --budget "$BUDGET" \
    "$@"
echo "==> table in bench/results.md" >&2
