#!/usr/bin/env bash
# Builds llama.cpp's engine tree once into the Switchyard cache: `llama-server`, `ggml-rpc-server`
# and `llama-fit-params` with every backend this host can use, as loadable libraries
# (GGML_BACKEND_DL=ON), so one llama-server serves the CPU, Vulkan GPUs and (when built) CUDA
# GPUs and OpenVINO devices. Called by setup.sh.
#
#   bash scripts/build_llama_server.sh                     # CPU + Vulkan (+ CUDA when an NVIDIA GPU is seen)
#   bash scripts/build_llama_server.sh --with cuda         # CUDA too: an installed toolkit (CUDA_HOME,
#                                                          # nvcc on PATH, /usr/local/cuda), else PyPI wheels
#   bash scripts/build_llama_server.sh --with openvino     # llama.cpp's OpenVINO backend (Intel NPU/GPU)
#   SWITCHYARD_ENGINE_BACKENDS="cpu vulkan" bash ...       # exactly these backends
#
# Idempotent: a second run with the same backends returns at once (a stamp holds the sdist's
# sha256, the flags and the backends). Source: the llama.cpp tree vendored in the PyPI sdist
# llama-cpp-python==$LLAMA_CPP_PY_VERSION (Debian has no llama.cpp package).
#
# Result, in <cache>/engines/llama.cpp-<version>/:
#   llama-server, ggml-rpc-server, llama-fit-params, libllama.so, libggml*.so   (RPATH $ORIGIN)
#   libggml-cpu.so        CPU backend, x86-64-v3 (AVX2/FMA/F16C; no AVX-512/AMX kernels)
#   libggml-vulkan.so     Vulkan backend (NVIDIA, Intel Arc/iGPU, AMD; Mesa lavapipe in tests)
#   libggml-cuda.so       CUDA backend (only with --with cuda or an NVIDIA GPU present)
#   libggml-openvino.so   OpenVINO backend (only with --with openvino)
#   BUILD                 what was built with what (glslc version, CUDA architectures, ...)
# Times on 2 cores, once: CPU ≈ 4.5 min, + Vulkan ≈ 15 min (shader generation), + OpenVINO ≈ 3 min.
#
# Vulkan on Debian 12: its headers (1.3.239) predate VK_EXT_layer_settings, which ggml-vulkan
# uses only to configure the validation layer; the script guards that block with
# `#ifdef VK_EXT_layer_settings` (printed when applied). glslc 2023.2 lacks the integer-dot and
# cooperative-matrix extensions: the backend works but Intel Arc runs slower than with a newer
# glslc; set VULKAN_SDK to a LunarG SDK to use its glslc and headers instead.
set -euo pipefail

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/switchyard"
VENV="$CACHE/venv"
VPY="$VENV/bin/python"
# Without the venv (an offline GPU host given only the sdist), the system python runs the
# small helper steps; pip is needed only to fetch what is not cached.
[ -x "$VPY" ] || VPY="$(command -v python3 || echo "$VPY")"
LLAMA_CPP_PY_VERSION="${LLAMA_CPP_PY_VERSION:-0.3.36}"
OUT="$CACHE/engines/llama.cpp-$LLAMA_CPP_PY_VERSION"
BIN="$OUT/llama-server"
STAMP="$OUT/.stamp"
JOBS="${LLAMA_BUILD_JOBS:-2}"

say() { printf 'engine-build: %s\n' "$*"; }
die() { printf 'engine-build: error: %s\n' "$*" >&2; exit 1; }
as_root_apt() { # as_root_apt WHY PKG... — installs Debian packages when root, else says what to run
  local why="$1"; shift
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing $* ($why; apt-get)"
    apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1; }
  else
    say "missing for $why: as root, apt-get install $*"
    return 1
  fi
}

# --- Which backends -------------------------------------------------------------------------
WITH=()
while [ $# -gt 0 ]; do
  case "$1" in
    --with) [ $# -ge 2 ] || die "--with needs a backend (cuda, openvino, vulkan)"; WITH+=("$2"); shift 2 ;;
    --with=*) WITH+=("${1#--with=}"); shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (use --with cuda|openvino|vulkan)" ;;
  esac
done
for b in "${WITH[@]:-}"; do
  case "$b" in ''|cuda|openvino|vulkan) ;; *) die "unknown backend '$b' (cuda, openvino, vulkan)" ;; esac
done
has_nvidia() { [ -e /dev/nvidiactl ] || ldconfig -p 2>/dev/null | grep 'libnvidia-ml.so.1' >/dev/null; }
if [ -n "${SWITCHYARD_ENGINE_BACKENDS:-}" ]; then
  BACKENDS="$SWITCHYARD_ENGINE_BACKENDS"
else
  BACKENDS="cpu vulkan"
  if has_nvidia || printf '%s\n' "${WITH[@]:-}" | grep -x cuda >/dev/null; then BACKENDS="$BACKENDS cuda"; fi
  if printf '%s\n' "${WITH[@]:-}" | grep -x openvino >/dev/null; then BACKENDS="$BACKENDS openvino"; fi
  # A previous build's extra backends stay (a later plain run must not drop them).
  if [ -f "$STAMP" ]; then
    for b in $(sed -n 's/^backends //p' "$STAMP"); do
      case " $BACKENDS " in *" $b "*) ;; *) BACKENDS="$BACKENDS $b" ;; esac
    done
  fi
fi
want() { case " $BACKENDS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# Not -march=native (ggml's default): on a CPU with AMX the native build runs ggml's AMX
# kernels, which crash (SIGSEGV in ggml_backend_amx_mul_mat, seen on a Sapphire Rapids VM),
# and a cached native binary may not run on another CPU. AVX2/FMA/F16C (x86-64-v3) runs on
# every x86 CPU of the last decade, with and without AVX512/AMX.
CPU_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
FLAGS="-DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=ON -DGGML_BACKEND_DL=ON -DGGML_RPC=ON -DCMAKE_BUILD_RPATH_USE_ORIGIN=ON $CPU_FLAGS"

# Fast path: binary present, stamp matches these flags and backends, and it runs.
if [ -x "$BIN" ] && [ -f "$STAMP" ] && grep -qxF "flags $FLAGS" "$STAMP" \
  && grep -qxF "backends $BACKENDS" "$STAMP" && "$BIN" --version >/dev/null 2>&1; then
  exit 0
fi

[ -x "$VPY" ] || die "no venv at $VENV and no python3: run scripts/setup.sh first"
command -v cmake >/dev/null 2>&1 || as_root_apt "building llama.cpp" cmake || die "cmake is missing: apt-get install cmake"
command -v c++ >/dev/null 2>&1 || die "no C++ compiler: apt-get install g++ (needed to build llama.cpp)"

BACKEND_FLAGS=""
NOTES=()
# --- Vulkan ---------------------------------------------------------------------------------
if want vulkan; then
  if [ -n "${VULKAN_SDK:-}" ] && [ -x "$VULKAN_SDK/bin/glslc" ]; then
    export PATH="$VULKAN_SDK/bin:$PATH"
    NOTES+=("vulkan: glslc and headers from VULKAN_SDK=$VULKAN_SDK")
  else
    if ! command -v glslc >/dev/null 2>&1 || [ ! -f /usr/include/vulkan/vulkan.hpp ] \
      || [ ! -d /usr/include/spirv ]; then
      as_root_apt "the Vulkan backend" glslc libvulkan-dev spirv-headers mesa-vulkan-drivers vulkan-tools || true
    fi
  fi
  if command -v glslc >/dev/null 2>&1 && [ -f "${VULKAN_SDK:-/usr}/include/vulkan/vulkan.hpp" ]; then
    BACKEND_FLAGS="$BACKEND_FLAGS -DGGML_VULKAN=ON"
    NOTES+=("vulkan: $(glslc --version 2>/dev/null | sed -n 1p)")
  else
    say "Vulkan backend skipped: glslc or the Vulkan headers are missing (apt-get install glslc libvulkan-dev spirv-headers)"
    BACKENDS="${BACKENDS/vulkan/}"
  fi
fi
# --- CUDA: an installed toolkit if there is one, else the PyPI CUDA wheels ------------------
system_cuda() { # the root of an installed CUDA toolkit (CUDA_HOME, /usr/local/cuda, nvcc on PATH)
  local nvcc
  for nvcc in "${CUDA_HOME:+$CUDA_HOME/bin/nvcc}" /usr/local/cuda/bin/nvcc "$(command -v nvcc 2>/dev/null || true)"; do
    [ -n "$nvcc" ] && [ -x "$nvcc" ] && { dirname "$(dirname "$(readlink -f "$nvcc")")"; return 0; }
  done
  return 1
}
if want cuda; then
  CUDA_ROOT="$(system_cuda || echo "$CACHE/cuda")"
  if ! [ -x "$CUDA_ROOT/bin/nvcc" ]; then
    say "installing the CUDA 12 compiler and libraries from PyPI into $CUDA_ROOT (nvidia-cuda-nvcc-cu12, -runtime, -cublas)"
    "$VPY" -m pip install --disable-pip-version-check -q --target "$CUDA_ROOT/wheels" \
      'nvidia-cuda-nvcc-cu12==12.9.86' 'nvidia-cuda-runtime-cu12==12.9.79' 'nvidia-cublas-cu12==12.9.1.4' \
      'nvidia-cuda-cccl-cu12==12.9.27' \
      || die "pip install of the CUDA wheels failed (is PyPI reachable?)"
    # Lay the wheels out as a toolkit tree CMake's FindCUDAToolkit understands.
    mkdir -p "$CUDA_ROOT/bin" "$CUDA_ROOT/include" "$CUDA_ROOT/lib64"
    for pkg in "$CUDA_ROOT"/wheels/nvidia/*/; do
      [ -d "$pkg/bin" ] && cp -rs "$pkg/bin/." "$CUDA_ROOT/bin/"
      [ -d "$pkg/include" ] && cp -rs "$pkg/include/." "$CUDA_ROOT/include/"
      [ -d "$pkg/lib" ] && cp -rs "$pkg/lib/." "$CUDA_ROOT/lib64/"
      [ -d "$pkg/nvvm" ] && cp -rs "$pkg/nvvm" "$CUDA_ROOT/"
    done
    for so in "$CUDA_ROOT"/lib64/lib*.so.[0-9]*; do
      base="${so%%.so.*}.so"; [ -e "$base" ] || ln -s "$(basename "$so")" "$base"
    done
  fi
  ARCHS="${CMAKE_CUDA_ARCHITECTURES:-}"
  if [ -z "$ARCHS" ] && command -v nvidia-smi >/dev/null 2>&1; then
    ARCHS="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | tr -d . | sort -u | paste -sd';')"
  fi
  ARCHS="${ARCHS:-native}"
  BACKEND_FLAGS="$BACKEND_FLAGS -DGGML_CUDA=ON -DCUDAToolkit_ROOT=$CUDA_ROOT -DCMAKE_CUDA_COMPILER=$CUDA_ROOT/bin/nvcc -DCMAKE_CUDA_ARCHITECTURES=$ARCHS"
  NOTES+=("cuda: $CUDA_ROOT, nvcc $("$CUDA_ROOT/bin/nvcc" --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p'), architectures $ARCHS")
fi
# --- OpenVINO, against the venv's openvino wheel (its cmake/ and include/) ---------------------
if want openvino; then
  OV_DIR="$("$VPY" -c 'import openvino, os; print(os.path.join(os.path.dirname(openvino.__file__), "cmake"))' 2>/dev/null || true)"
  [ -f "$OV_DIR/OpenVINOConfig.cmake" ] || die "the venv's openvino wheel has no cmake/OpenVINOConfig.cmake (scripts/requirements.txt pins openvino)"
  if [ ! -f /usr/include/CL/cl.h ] || ! ldconfig -p | grep libOpenCL.so >/dev/null; then
    as_root_apt "the OpenVINO backend" ocl-icd-opencl-dev opencl-headers || die "OpenCL headers missing: apt-get install ocl-icd-opencl-dev opencl-headers"
  fi
  BACKEND_FLAGS="$BACKEND_FLAGS -DGGML_OPENVINO=ON -DOpenVINO_DIR=$OV_DIR"
  NOTES+=("openvino: $OV_DIR")
fi
BACKENDS="$(echo $BACKENDS)"

if ! "$VPY" -c 'import scikit_build_core' >/dev/null 2>&1; then
  say "installing scikit-build-core into $VENV (pip needs it to fetch the llama-cpp-python sdist)"
  "$VPY" -m pip install --disable-pip-version-check -q 'scikit-build-core>=0.10' \
    || die "pip install scikit-build-core failed"
fi

# The sdist is kept in the cache (76 MB) so a rebuild with another backend needs no download.
SRC_CACHE="$CACHE/src"
mkdir -p "$SRC_CACHE"
SDIST="$(ls "$SRC_CACHE"/llama_cpp_python-"$LLAMA_CPP_PY_VERSION".tar.gz 2>/dev/null || true)"
if [ -z "$SDIST" ]; then
  say "fetching llama-cpp-python==$LLAMA_CPP_PY_VERSION sdist (vendored llama.cpp, 76 MB)"
  "$VPY" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
    --no-build-isolation -d "$SRC_CACHE" "llama-cpp-python==$LLAMA_CPP_PY_VERSION" \
    || die "pip download llama-cpp-python==$LLAMA_CPP_PY_VERSION failed (is PyPI reachable?)"
  SDIST="$SRC_CACHE/llama_cpp_python-$LLAMA_CPP_PY_VERSION.tar.gz"
fi
SHA="$(sha256sum "$SDIST" | cut -d' ' -f1)"
WORK="${LLAMA_BUILD_DIR:-$CACHE/build/llama.cpp-$LLAMA_CPP_PY_VERSION}"
mkdir -p "$WORK"
if [ "$(cat "$WORK/.sdist" 2>/dev/null || true)" != "$SHA" ]; then
  rm -rf "$WORK/src" "$WORK/build"
  mkdir -p "$WORK/src"
  tar -xzf "$SDIST" -C "$WORK/src"
  echo "$SHA" >"$WORK/.sdist"
fi
SRC="$(ls -d "$WORK"/src/llama_cpp_python-*/vendor/llama.cpp)"

# Debian 12's Vulkan headers lack VK_EXT_layer_settings (used only for the validation layer).
if want vulkan; then
  "$VPY" - "$SRC/ggml/src/ggml-vulkan/ggml-vulkan.cpp" <<'PY' || die "cannot apply the VK_EXT_layer_settings guard"
import sys
path = sys.argv[1]
text = open(path).read()
mark = "// switchyard: guarded for Vulkan headers without VK_EXT_layer_settings"
start = "    std::vector<vk::LayerSettingEXT> settings = {"
end = "    vk::InstanceCreateInfo instance_create_info(vk::InstanceCreateFlags{}, &app_info, layers, extensions, &layer_setting_info);\n"
if mark in text:
    sys.exit(0)
i, j = text.find(start), text.find(end)
if i < 0 or j < 0:
    sys.exit("anchor not found in ggml-vulkan.cpp: the vendored tree changed; update the guard")
j += len(end)
block = text[i:j]
guarded = (f"{mark}\n#ifdef VK_EXT_layer_settings\n{block}#else\n"
           "    (void) enable_best_practice;\n"
           "    vk::InstanceCreateInfo instance_create_info(vk::InstanceCreateFlags{}, &app_info, layers, extensions);\n"
           "#endif\n")
text = text[:i] + guarded + text[j:]
open(path, "w").write(text)
print("engine-build: applied the VK_EXT_layer_settings guard to ggml-vulkan.cpp (Debian 12 headers)")
PY
fi

say "building llama.cpp engines (backends: $BACKENDS; -j$JOBS; once — CPU ≈ 4.5 min, Vulkan ≈ 15 min more on 2 cores)"
# shellcheck disable=SC2086
cmake -S "$SRC" -B "$WORK/build" $FLAGS $BACKEND_FLAGS >"$WORK/cmake.log" 2>&1 \
  || { tail -30 "$WORK/cmake.log" >&2; die "cmake configure of llama.cpp failed (log: $WORK/cmake.log)"; }
# Progress: cmake prints "[ NN%]"; show each new tenth.
set +e
cmake --build "$WORK/build" --target llama-server ggml-rpc-server llama-fit-params -j"$JOBS" 2>&1 \
  | tee "$WORK/build.log" \
  | awk -v last=-1 '/^\[ *[0-9]+%\]/ { p = substr($0, 2, index($0, "%") - 2) + 0; if (int(p / 10) != last) { last = int(p / 10); printf "engine-build: %3d%% %s\n", p, substr($0, index($0, "]") + 2); fflush() } }'
rc=${PIPESTATUS[0]}
set -e
[ "$rc" = 0 ] || { tail -15 "$WORK/build.log" >&2; die "building llama.cpp failed (log: $WORK/build.log)"; }

STAGE="$OUT.new"
rm -rf "$STAGE"
mkdir -p "$STAGE"
for f in "$WORK"/build/bin/llama-server "$WORK"/build/bin/ggml-rpc-server "$WORK"/build/bin/llama-fit-params "$WORK"/build/bin/*.so*; do
  [ -e "$f" ] && cp -a "$f" "$STAGE/"
done
"$STAGE/llama-server" --version >/dev/null 2>&1 || die "the built llama-server does not run (ldd $STAGE/llama-server)"
LIST="$(GGML_VK_VISIBLE_DEVICES=0 "$STAGE/llama-server" --list-devices 2>&1 || true)"
{
  echo "llama.cpp from llama-cpp-python==$LLAMA_CPP_PY_VERSION (sdist sha256 $SHA)"
  echo "backends: $BACKENDS"
  for n in "${NOTES[@]:-}"; do [ -n "$n" ] && echo "$n"; done
  echo "backend libraries: $(cd "$STAGE" && ls libggml-*.so 2>/dev/null | tr '\n' ' ')"
  echo "devices seen at build time (GGML_VK_VISIBLE_DEVICES=0):"
  echo "$LIST" | sed -n '/Available devices/,$p'
} >"$STAGE/BUILD"

# --version computes nothing: load the real GGUF once on the CPU (llama-server warms up with
# a decode before /health answers), so a build that crashes on this CPU is caught here.
GGUF_CHECK="${SWITCHYARD_MODELS_DIR:-$CACHE/models}/smollm2-135m-gguf/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -f "$GGUF_CHECK" ]; then
  "$VPY" - "$STAGE/llama-server" "$GGUF_CHECK" <<'PY' || die "the built llama-server does not serve the GGUF on this CPU (see above)"
import socket, subprocess, sys, time, urllib.request
_, binary, gguf = sys.argv
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
p = subprocess.Popen([binary, "-m", gguf, "--host", "127.0.0.1", "--port", str(port), "-c", "512", "-t", "2",
                      "--device", "none", "-ngl", "0"],
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
printf 'sdist llama-cpp-python==%s sha256 %s\nflags %s\nbackends %s\n' "$LLAMA_CPP_PY_VERSION" "$SHA" "$FLAGS" "$BACKENDS" >"$STAGE/.stamp"
rm -rf "$OUT.old"
[ -e "$OUT" ] && mv "$OUT" "$OUT.old"
mv "$STAGE" "$OUT"
rm -rf "$OUT.old"
say "built $BIN (backends: $BACKENDS)"
sed 's/^/engine-build:   /' "$OUT/BUILD"
