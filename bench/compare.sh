#!/usr/bin/env bash
# Side-by-side benchmarks of gradfit against pyhf (NumPy, JAX), cabinetry and NextStat on
# the shared workspaces. One command from a fresh clone:
#
#     bash bench/compare.sh            # full run (~30 minutes on 2 cores)
#     bash bench/compare.sh --quick    # smoke test (a few minutes)
#     bash bench/compare.sh --train    # training through fits: neos/relaxed (JAX) and
#                                      # pytorch_inferno (torch) against gradfit
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

# --- training through fits (bench/train_compare.py), its own venvs -----------------
if [ "${1:-}" = "--train" ]; then
    cargo build --release --quiet --example neos --example inferno
    TV="$ROOT/.venv-train-bench"
    if [ ! -x "$TV/bin/python" ] || ! "$TV/bin/python" -c "import relaxed, optax" 2>/dev/null; then
        echo "==> installing relaxed 0.4.0 (JAX) into $TV" >&2
        "$PY" -m venv "$TV"
        # neos 0.3.0 depends on the deprecated 'sklearn' name
        SKLEARN_ALLOW_DEPRECATED_SKLEARN_PACKAGE_INSTALL=True "$TV/bin/pip" install --quiet \
            "neos==0.3.0" "relaxed==0.4.0" "pyhf[jax]==0.7.6" optax
    fi
    TT="$ROOT/.venv-train-torch"
    if [ ! -x "$TT/bin/python" ] || ! "$TT/bin/python" -c "import pytorch_inferno.inferno, safetensors" 2>/dev/null; then
        echo "==> installing pytorch_inferno 0.2.2 (torch from PyPI, several GB) into $TT" >&2
        "$PY" -m venv "$TT"
        # pytorch_inferno 0.2.2 imports fastcore.typedispatch (gone after fastcore 1.5)
        "$TT/bin/pip" install --quiet "pytorch_inferno==0.2.2" "fastcore==1.5.29" "fastprogress==1.0.3" safetensors
    fi
    "$TV/bin/python" bench/train_compare.py neos --gradfit-example "$ROOT/target/release/examples/neos" \
        --out "$ROOT/bench/train_neos.json"
    "$TT/bin/python" bench/train_compare.py inferno --gradfit-example "$ROOT/target/release/examples/inferno" \
        --epochs 3 --out "$ROOT/bench/train_inferno.json"
    # sigma_s of fully trained pytorch_inferno networks (5 seeds x 30 epochs),
    # measured by gradfit's evaluation next to gradfit's own networks
    "$TT/bin/python" bench/train_compare.py inferno-sigma --gradfit-example "$ROOT/target/release/examples/inferno" \
        --epochs 30 --seeds 5 --out "$ROOT/bench/train_inferno_sigma.json"
    echo "==> results in bench/train_neos.json and bench/train_inferno.json" >&2
    exit 0
fi

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import pyhf, jax, cabinetry" 2>/dev/null \
    || [ ! -x "$VENV/bin/nextstat" ]; then
    echo "==> installing pyhf[jax], cabinetry and nextstat-cli into $VENV" >&2
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet "pyhf[jax]==0.7.6" "cabinetry==0.6.0" "nextstat-cli==0.10.1"
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
    --nextstat "$VENV/bin/nextstat" \
    "$@"
echo "==> table in bench/results.md" >&2
