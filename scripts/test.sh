#!/usr/bin/env bash
# Switchyard's whole test suite — the one command CI runs (.ci/run calls this).
#
#   bash scripts/test.sh
#
# Prepares what it needs (Python venv with ONNX Runtime/OpenVINO/openai/grpcio, the real
# models, cached under ${XDG_CACHE_HOME:-~/.cache}/switchyard), then runs: rustfmt check,
# clippy -D warnings, the Rust unit + end-to-end tests (the e2e tests start the real
# `switchyard` binary on loopback, port 0), and the Python tests (official openai client,
# grpcio, model checks). Tests that need an NVIDIA GPU / Intel GPU / NPU are #[ignore]d.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/switchyard"

step() { printf '\n==> %s\n' "$*"; }

step "set-up (venv, models, engine tree with CPU + Vulkan + OpenVINO backends; cached)"
# OpenVINO: the NPU engine path's test runs llama.cpp's OpenVINO backend on OpenVINO's CPU.
bash scripts/setup.sh --with openvino
# shellcheck disable=SC1091
source "$CACHE/env.sh"
export SWITCHYARD_THREADS="${SWITCHYARD_THREADS:-2}"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "build (binary used by the end-to-end tests)"
cargo build --workspace --all-targets
export SWITCHYARD_BIN="$ROOT/target/debug/switchyard"

step "Rust tests (unit + end-to-end)"
# Tests whose precondition is missing (not root, no Vulkan driver, ...) list themselves here;
# under CI=true such a test fails instead.
export SWITCHYARD_SKIP_LOG="$ROOT/target/skipped-tests.txt"
rm -f "$SWITCHYARD_SKIP_LOG"
cargo test --workspace --no-fail-fast

step "Python tests (openai client, grpcio, models)"
PYTESTS=(scripts/test_models.py)
[ -d tests/python ] && PYTESTS+=(tests/python)
"$SWITCHYARD_PYTHON" -m pytest -q "${PYTESTS[@]}"
if [ -s "$SWITCHYARD_SKIP_LOG" ]; then
  step "skipped (precondition missing; they would fail under CI=true)"
  sed 's/^/  SKIPPED /' "$SWITCHYARD_SKIP_LOG"
fi
