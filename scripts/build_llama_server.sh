#!/usr/bin/env bash
# Builds llama.cpp's `llama-server` (CPU) once into the Switchyard cache; called by setup.sh.
#
#   bash scripts/build_llama_server.sh     # idempotent: a second run returns at once
#
# Source: the llama.cpp tree vendored in the PyPI sdist llama-cpp-python==$LLAMA_CPP_PY_VERSION
# (Debian has no llama.cpp package). Needs cmake (installed from Debian when missing and we are
# root), a C++ compiler and scikit-build-core in the venv (pip needs it to fetch the sdist).
# Result: <cache>/engines/llama.cpp-<version>/llama-server, statically linked against llama/ggml
# (-DBUILD_SHARED_LIBS=OFF, so the binary stands alone), with a stamp file holding the sdist's
# sha256 and the build flags. About 4.5 min on 2 cores, once.
#
# GPU builds (not done here; on a GPU host, in the same vendored tree):
#   CUDA:   add -DGGML_CUDA=ON (needs the CUDA toolkit, nvcc on PATH)
#   Vulkan: add -DGGML_VULKAN=ON (needs libvulkan-dev + glslc)
#   SYCL:   add -DGGML_SYCL=ON -DCMAKE_C_COMPILER=icx -DCMAKE_CXX_COMPILER=icpx (oneAPI)
# and point the agent at the result with `[engines.llama_cpp] server = "/path/llama-server"`.
set -euo pipefail

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/switchyard"
VENV="$CACHE/venv"
VPY="$VENV/bin/python"
LLAMA_CPP_PY_VERSION="${LLAMA_CPP_PY_VERSION:-0.3.36}"
OUT="$CACHE/engines/llama.cpp-$LLAMA_CPP_PY_VERSION"
BIN="$OUT/llama-server"
STAMP="$OUT/.stamp"
# Not -march=native (ggml's default): on a CPU with AMX the native build runs ggml's AMX
# kernels, which crash (SIGSEGV in ggml_backend_amx_mul_mat, seen on a Sapphire Rapids VM),
# and a cached native binary may not run on another CPU. AVX2/FMA/F16C (x86-64-v3) runs on
# every x86 CPU of the last decade, with and without AVX512/AMX.
CPU_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
FLAGS="-DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF $CPU_FLAGS"
JOBS="${LLAMA_BUILD_JOBS:-2}"

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# Fast path: binary present, stamp matches these flags, and it runs.
if [ -x "$BIN" ] && [ -f "$STAMP" ] && grep -qxF "flags $FLAGS" "$STAMP" \
  && "$BIN" --version >/dev/null 2>&1; then
  exit 0
fi

[ -x "$VPY" ] || die "no venv at $VENV: run scripts/setup.sh first"

if ! command -v cmake >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing cmake (Debian, apt-get) to build llama-server"
    apt-get install -y -q --no-install-recommends cmake >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends cmake >/dev/null 2>&1; } \
      || die "apt-get install cmake failed"
  else
    die "cmake is missing: as root, apt-get install cmake (needed to build llama-server)"
  fi
fi
command -v c++ >/dev/null 2>&1 || die "no C++ compiler: apt-get install g++ (needed to build llama-server)"

if ! "$VPY" -c 'import scikit_build_core' >/dev/null 2>&1; then
  say "installing scikit-build-core into $VENV (pip needs it to fetch the llama-cpp-python sdist)"
  "$VPY" -m pip install --disable-pip-version-check -q 'scikit-build-core>=0.10' \
    || die "pip install scikit-build-core failed"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/llama-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
say "fetching llama-cpp-python==$LLAMA_CPP_PY_VERSION sdist (vendored llama.cpp, 76 MB)"
"$VPY" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
  --no-build-isolation -d "$WORK" "llama-cpp-python==$LLAMA_CPP_PY_VERSION" \
  || die "pip download llama-cpp-python==$LLAMA_CPP_PY_VERSION failed (is PyPI reachable?)"
SDIST="$(ls "$WORK"/llama_cpp_python-*.tar.gz)"
SHA="$(sha256sum "$SDIST" | cut -d' ' -f1)"
tar -xzf "$SDIST" -C "$WORK"
SRC="$(ls -d "$WORK"/llama_cpp_python-*/vendor/llama.cpp)"

say "building llama-server (CPU, -j$JOBS; once, about 4.5 min on 2 cores)"
# shellcheck disable=SC2086
cmake -S "$SRC" -B "$WORK/build" $FLAGS >"$WORK/cmake.log" 2>&1 \
  || { tail -30 "$WORK/cmake.log" >&2; die "cmake configure of llama.cpp failed"; }
cmake --build "$WORK/build" --target llama-server -j"$JOBS" >"$WORK/build.log" 2>&1 \
  || { tail -30 "$WORK/build.log" >&2; die "building llama-server failed"; }
mkdir -p "$OUT"
install -m 0755 "$WORK/build/bin/llama-server" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
"$BIN" --version >/dev/null 2>&1 || die "the built $BIN does not run"
# --version computes nothing: load the real GGUF once (llama-server warms up with a decode
# before /health answers), so a binary that crashes on this CPU is caught here, not in
# the tests.
GGUF_CHECK="${SWITCHYARD_MODELS_DIR:-$CACHE/models}/smollm2-135m-gguf/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -f "$GGUF_CHECK" ]; then
  "$VPY" - "$BIN" "$GGUF_CHECK" <<'PY' || { rm -f "$BIN"; die "the built llama-server does not serve the GGUF on this CPU (see above)"; }
import socket, subprocess, sys, time, urllib.request
_, binary, gguf = sys.argv
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
p = subprocess.Popen([binary, "-m", gguf, "--host", "127.0.0.1", "--port", str(port), "-c", "512", "-t", "2"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
try:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if p.poll() is not None:
            err = p.stderr.read().decode(errors="replace").strip().splitlines()[-5:]
            sys.exit(f"llama-server exited with {p.returncode} while loading the model: " + " | ".join(err))
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    sys.exit(0)
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit("llama-server did not answer /health within 180 s")
finally:
    p.kill()
    p.wait()
PY
fi
printf 'sdist llama-cpp-python==%s sha256 %s\nflags %s\n' "$LLAMA_CPP_PY_VERSION" "$SHA" "$FLAGS" >"$STAMP"
say "built $BIN"
