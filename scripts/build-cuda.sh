#!/usr/bin/env bash
# Build gradfit with the `cuda` feature on a fresh machine.
#
# 1. Installs CUDA 13.0's compiler from PyPI (nvidia-cuda-nvcc, -crt, nvidia-nvvm,
#    nvidia-cuda-runtime, nvidia-cuda-cccl) into .cuda/py (ignored by git), once.
# 2. Builds `cargo build --release --features cuda` with that nvcc, for compute
#    capability $CUDA_COMPUTE_CAP (default 90: H100, H200). The kernels are
#    embedded as PTX; the binary opens the NVIDIA driver (libcuda) at run time
#    and needs no other CUDA library. Running it needs a driver that supports
#    CUDA 13.0 (R580 or newer).
#
# Usage: scripts/build-cuda.sh [--check] [extra cargo args...]
#   --check   build and then `cargo clippy --features cuda` (what .ci/run does)
# Environment: CUDA_COMPUTE_CAP (default 90), PYTHON (default python3),
#   GRADFIT_CUDA_PIP_ARGS (extra pip arguments, e.g. an index URL).
# Afterwards: target/release/gradfit selftest --device cuda
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
PREFIX="$ROOT/.cuda/py"
PKGS=(
    "nvidia-cuda-nvcc==13.0.88"
    "nvidia-cuda-crt==13.0.88"
    "nvidia-nvvm==13.0.88"
    "nvidia-cuda-runtime==13.0.96"
    "nvidia-cuda-cccl==13.0.85"
)
STAMP="$ROOT/.cuda/installed.txt"
CHECK=0
if [ "${1:-}" = "--check" ]; then
    CHECK=1
    shift
fi

die() { echo "error: $*" >&2; exit 1; }
command -v cargo >/dev/null 2>&1 || die "cargo not found; install a Rust toolchain (rustup) first"

want="${PKGS[*]}"
if [ -x "$PREFIX/nvidia/cu13/bin/nvcc" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    echo "==> CUDA compiler already in .cuda/py ($want)"
else
    command -v "$PY" >/dev/null 2>&1 || die "$PY not found (needed to install nvcc from PyPI); set PYTHON"
    "$PY" -m pip --version >/dev/null 2>&1 || die "$PY has no pip (try: $PY -m ensurepip)"
    echo "==> installing ${PKGS[*]} into .cuda/py"
    rm -rf "$PREFIX" "$STAMP"
    mkdir -p "$PREFIX"
    # shellcheck disable=SC2086
    "$PY" -m pip install --quiet --disable-pip-version-check --no-deps --target "$PREFIX" \
        ${GRADFIT_CUDA_PIP_ARGS:-} "${PKGS[@]}"
    [ -x "$PREFIX/nvidia/cu13/bin/nvcc" ] || die "nvcc not found in $PREFIX/nvidia/cu13/bin after the install"
    echo "$want" > "$STAMP"
fi

CUDA_ROOT="$PREFIX/nvidia/cu13"
export PATH="$CUDA_ROOT/bin:$PATH"
export CUDA_HOME="$CUDA_ROOT"
export NVCC="$CUDA_ROOT/bin/nvcc"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
nvcc --version | grep -q "release 13.0" || die "unexpected nvcc: $(nvcc --version | tail -n 2)"
echo "==> $(nvcc --version | grep release), compute capability $CUDA_COMPUTE_CAP"

echo "==> cargo build --release --features cuda $*"
start=$(date +%s)
cargo build --release --features cuda "$@"
echo "==> built target/release/gradfit with CUDA in $(( $(date +%s) - start )) s"
if [ "$CHECK" = 1 ]; then
    echo "==> cargo clippy --features cuda --all-targets -- -D warnings"
    cargo clippy --features cuda --all-targets -- -D warnings
fi
echo "run: target/release/gradfit selftest --device cuda [WORKSPACE[,PATCH]...]"
