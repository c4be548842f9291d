#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU (never CI). One table out.
#
#   bash scripts/gpu-check.sh [--phase all|engine|serve] [OUT_DIR]
#
# engine: the CUDA engine backend (set-up host: setup.sh --with cuda, which also puts
#         onnxruntime-gpu in the venv; a host without the venv: build_llama_server.sh alone,
#         with an installed toolkit), `llama-server --list-devices` under CUDA, and live NVML
#         discovery through `switchyard devices`;
# serve:  generation placed on the GPU through Switchyard against a direct llama-server with the
#         same argv and pin (scripts/bench_gpu_engine.py --device gpu: tok/s at 1 and 4 streams,
#         TTFT), ORT CUDA embeddings through Switchyard against direct ORT CUDA (batch 32) where
#         the Python side has ORT's CUDA provider, and the table;
# while nvidia-smi samples utilisation, VRAM, temperature and power every second.
# Needs the switchyard binary (SWITCHYARD_BIN, else target/release, else it builds one with cargo).
#
# A GPU host without network gets what it needs from a folder made on a set-up host:
#   bash scripts/gpu-check.sh --pack DIR      # here: DIR/1 and DIR/2 (each < 64 MiB: the model
#                                             # is split), the llama.cpp sources without the other
#                                             # backends, the stripped binary, the GGUF
#   bash scripts/gpu-check.sh --unpack DIR/N  # there: into ${XDG_CACHE_HOME}/switchyard
# There, point XDG_CACHE_HOME at a folder that outlives a copy of the tree (under target/): the
# engine build (about 280 s on 16 cores for cpu+cuda, one architecture) is kept between calls.
# Measured on an H200 on 2026-12-04: see the README's "GPU check" section.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/switchyard"
GGUF_REL="models/smollm2-135m-gguf/SmolLM2-135M-Instruct.Q4_1.gguf"
SDIST_NAME="llama_cpp_python-0.3.36"
say() { printf '\n==> gpu-check: %s\n' "$*"; }
die() { printf 'gpu-check: error: %s\n' "$*" >&2; exit 2; }

pack() { # pack DIR: two carry folders for an offline GPU host
  local dir="$1" src
  mkdir -p "$dir/1" "$dir/2"
  src="$(ls -d "$CACHE"/build/llama.cpp-*/src 2>/dev/null | head -1)"
  [ -d "$src/$SDIST_NAME" ] || die "no extracted $SDIST_NAME under $CACHE/build: run scripts/setup.sh first"
  local v="$SDIST_NAME/vendor/llama.cpp" ex=()
  for b in cann et hexagon hip metal musa opencl openvino sycl virtgpu vulkan webgpu zdnn zendnn blas; do
    ex+=("--exclude=$v/ggml/src/ggml-$b")
  done
  tar -czf "$dir/1/$SDIST_NAME.tar.gz" -C "$src" --exclude="$v/docs" --exclude="$v/models" \
    --exclude="$v/media" --exclude="$v/tests" --exclude="$v/benches" --exclude="$v/examples" \
    --exclude="$v/gguf-py" --exclude="$v/conversion" "${ex[@]}" "$v"
  local bin="${SWITCHYARD_BIN:-$ROOT/target/release/switchyard}"
  [ -x "$bin" ] || die "no $bin: cargo build --release -p switchyard"
  strip -o "$dir/1/switchyard" "$bin" && xz -f -T0 "$dir/1/switchyard"
  split -b 36M -d "$CACHE/$GGUF_REL" "$dir/model.part"
  mv "$dir/model.part00" "$dir/1/" && mv "$dir/model.part"* "$dir/2/"
  sha256sum "$CACHE/$GGUF_REL" | cut -d' ' -f1 >"$dir/2/model.sha256"
  du -sh "$dir"/1 "$dir"/2
}

unpack() { # unpack DIR/N: into the cache
  local dir="$1"
  mkdir -p "$CACHE/src" "$CACHE/$(dirname "$GGUF_REL")" "$CACHE/bin" "$CACHE/parts"
  [ -f "$dir/$SDIST_NAME.tar.gz" ] && cp "$dir/$SDIST_NAME.tar.gz" "$CACHE/src/"
  [ -f "$dir/switchyard.xz" ] && xz -dc "$dir/switchyard.xz" >"$CACHE/bin/switchyard" && chmod +x "$CACHE/bin/switchyard"
  cp "$dir"/model.part* "$CACHE/parts/" 2>/dev/null || true
  if [ -f "$dir/model.sha256" ]; then
    cat "$CACHE"/parts/model.part* >"$CACHE/$GGUF_REL"
    [ "$(sha256sum "$CACHE/$GGUF_REL" | cut -d' ' -f1)" = "$(cat "$dir/model.sha256")" ] || die "the reassembled GGUF's sha256 differs"
  fi
  ls -la "$CACHE/src" "$CACHE/bin" "$CACHE/$(dirname "$GGUF_REL")"
}

PHASE=all
while [ $# -gt 0 ]; do
  case "$1" in
    --pack) pack "$2"; exit 0 ;;
    --unpack) unpack "$2"; exit 0 ;;
    --phase) PHASE="$2"; shift 2 ;;
    *) break ;;
  esac
done
case "$PHASE" in all|engine|serve) ;; *) die "--phase is all, engine or serve" ;; esac
OUT="${1:-${OUT:-$ROOT/target/gpu-check}}"
mkdir -p "$OUT"

command -v nvidia-smi >/dev/null 2>&1 || die "no nvidia-smi: this needs an NVIDIA GPU and its driver"
if [ -x "$CACHE/venv/bin/python" ]; then VPY="$CACHE/venv/bin/python"; else VPY="$(command -v python3)"; fi
BIN="${SWITCHYARD_BIN:-$ROOT/target/release/switchyard}"
[ -x "$BIN" ] || [ ! -x "$CACHE/bin/switchyard" ] || BIN="$CACHE/bin/switchyard"
if [ ! -x "$BIN" ]; then
  say "building switchyard (release)"
  cargo build --release -p switchyard
fi
export SWITCHYARD_BIN="$BIN"

nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw \
  --format=csv,noheader,nounits -l 1 >>"$OUT/nvml.csv" 2>/dev/null &
SAMPLER=$!
trap 'kill $SAMPLER 2>/dev/null || true' EXIT

if [ "$PHASE" != serve ]; then
  nvidia-smi --query-gpu=index,name,uuid,pci.bus_id,compute_cap,memory.total,driver_version --format=csv | tee "$OUT/gpus.csv"
  if [ -x "$CACHE/venv/bin/python" ]; then
    say "set-up with CUDA (engine backend, onnxruntime-gpu)"
    bash scripts/setup.sh --with cuda 2>&1 | tee -a "$OUT/setup.log"
  else
    say "engine build with CUDA (no venv here: build_llama_server.sh alone, installed toolkit)"
    backends="cpu cuda"
    command -v glslc >/dev/null 2>&1 && backends="$backends vulkan"
    start=$(date +%s)
    SWITCHYARD_ENGINE_BACKENDS="$backends" LLAMA_BUILD_JOBS="${LLAMA_BUILD_JOBS:-$(nproc)}" \
      bash scripts/build_llama_server.sh --with cuda 2>&1 | tee -a "$OUT/setup.log"
    echo "engine build: $(( $(date +%s) - start )) s with $(nproc) cores" | tee -a "$OUT/setup.log"
  fi
  ENGINE="$(ls -d "$CACHE"/engines/llama.cpp-*/ | head -1)"
  { cat "$ENGINE/BUILD"; echo; echo "--list-devices, no pin:"; "$ENGINE/llama-server" --list-devices 2>&1 | sed -n '/Available/,$p'
    uuid="$(nvidia-smi --query-gpu=uuid --format=csv,noheader | head -1)"
    echo "--list-devices, CUDA_VISIBLE_DEVICES=$uuid:"; CUDA_VISIBLE_DEVICES="$uuid" "$ENGINE/llama-server" --list-devices 2>&1 | sed -n '/Available/,$p'
  } | tee "$OUT/engine.txt"
  say "live discovery (NVML)"
  "$BIN" devices -o json >"$OUT/devices.json"
  "$BIN" devices | tee "$OUT/devices.txt"
fi
[ "$PHASE" = engine ] && exit 0

say "generation: Switchyard on the GPU vs direct llama-server (same argv, same pin)"
"$VPY" scripts/bench_gpu_engine.py --device gpu --requests 4 --max-tokens 128 --rounds 3 \
  --bin "$BIN" --json "$OUT/generation.json" 2>&1 | tee "$OUT/generation.txt"

say "embeddings: Switchyard ort-cuda vs direct ORT CUDA (batch 32)"
if "$VPY" -c 'import onnxruntime as o, sys; sys.exit(0 if "CUDAExecutionProvider" in o.get_available_providers() and tuple(map(int, o.__version__.split(".")[:2])) >= (1, 31) else 1)' 2>/dev/null \
   && [ -f "$CACHE/models/minilm-l6-v2/model.onnx" ]; then
  "$VPY" scripts/gpu_check_embeddings.py "$BIN" "$OUT" 2>&1 | tee "$OUT/embeddings.txt"
else
  reason="$("$VPY" -c 'import onnxruntime as o; print(f"onnxruntime {o.__version__}, providers {o.get_available_providers()}")' 2>&1 | tail -1)"
  echo "{\"skipped\": \"ORT CUDA needs onnxruntime-gpu >= 1.31 (api-31) and the minilm model; here: ${reason//\"/\'}\"}" >"$OUT/embeddings.json"
  echo "embeddings skipped: $reason" | tee "$OUT/embeddings.txt"
fi
kill $SAMPLER 2>/dev/null || true

say "table"
"$VPY" scripts/gpu_check_table.py "$OUT" | tee "$OUT/table.txt"
