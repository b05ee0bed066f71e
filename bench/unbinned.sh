#!/usr/bin/env bash
# Unbinned fits side by side with zfit, iminuit + numba-stats and NextStat
# (all from PyPI, in the git-ignored .venv-bench-unbinned):
#
#     bash bench/unbinned.sh             # 1,000,000-event fits and 1,000 toys
#     bash bench/unbinned.sh --events 100000 --toys 200 --repeats 1   # quicker
#     bash bench/unbinned.sh --only toys --toys 1000 --repeats 2      # the toy row alone
#     bash bench/unbinned.sh --only toys --toy-peers iminuit          # ... without zfit (minutes)
#
# Writes bench/unbinned_results.json and bench/unbinned_results.md (copy the
# table into docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv-bench-unbinned"
PY=${PYTHON:-python3}
echo "==> building gradfit and the profile example (release)" >&2
cargo build --release --quiet --bin gradfit --example profile_unbinned
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import zfit, numba_stats, iminuit, pyarrow" 2>/dev/null; then
    echo "==> installing zfit, numba-stats, iminuit, pyarrow and nextstat-cli into $VENV" >&2
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet "zfit==0.28.0" "numba-stats==1.14.0" "iminuit==2.33.0" pyarrow "nextstat-cli==0.10.1"
fi
"$VENV/bin/python" bench/unbinned_compare.py \
    --gradfit "$ROOT/target/release/gradfit" \
    --profile "$ROOT/target/release/examples/profile_unbinned" \
    --nextstat "$VENV/bin/nextstat" \
    --work "${TMPDIR:-/tmp}/gradfit-unbinned-bench" \
    --out-json "$ROOT/bench/unbinned_results.json" \
    --out-md "$ROOT/bench/unbinned_results.md" \
    "$@"
