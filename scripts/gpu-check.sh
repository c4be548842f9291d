#!/usr/bin/env bash
# The GPU check of issue 30, for a machine with an NVIDIA GPU (never CI). One table out.
#
#   bash scripts/gpu-check.sh [OUT_DIR]
#
# 1. builds the CUDA engine backend from the PyPI CUDA wheels (setup.sh --with cuda; one
#    architecture, from nvidia-smi's compute capability) and puts onnxruntime-gpu in the venv;
# 2. live NVML discovery through `switchyard devices`;
# 3. generation placed on the GPU through Switchyard against a direct llama-server with the same
#    argv and pin (scripts/bench_gpu_engine.py --device gpu: tok/s at 1 and 4 streams, TTFT);
# 4. ORT CUDA embeddings through Switchyard (placement on the GPU, backend ort-cuda) against
#    direct ORT CUDA, batch 32;
# while nvidia-smi samples utilisation, VRAM and temperature every second. Needs the switchyard
# binary (SWITCHYARD_BIN, else target/release, else it builds one with cargo).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${1:-${OUT:-$ROOT/target/gpu-check}}"
mkdir -p "$OUT"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/switchyard"
say() { printf '\n==> gpu-check: %s\n' "$*"; }

command -v nvidia-smi >/dev/null 2>&1 || { echo "gpu-check: no nvidia-smi: this needs an NVIDIA GPU and its driver" >&2; exit 2; }
nvidia-smi --query-gpu=index,name,uuid,pci.bus_id,compute_cap,memory.total,driver_version --format=csv | tee "$OUT/gpus.csv"

say "set-up with CUDA (engine backend from PyPI wheels, onnxruntime-gpu)"
bash scripts/setup.sh --with cuda 2>&1 | tee "$OUT/setup.log"
# shellcheck disable=SC1091
source "$CACHE/env.sh"
VPY="$SWITCHYARD_PYTHON"
# The CUDA runtime libraries the ORT CUDA provider and libggml-cuda.so load.
SITE="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
for d in "$SITE"/nvidia/*/lib "$CACHE"/cuda/lib64; do [ -d "$d" ] && LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"; done
export LD_LIBRARY_PATH

BIN="${SWITCHYARD_BIN:-$ROOT/target/release/switchyard}"
if [ ! -x "$BIN" ]; then
  say "building switchyard (release)"
  cargo build --release -p switchyard
fi
export SWITCHYARD_BIN="$BIN"

say "NVML sampler (1 s)"
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw \
  --format=csv,noheader,nounits -l 1 >"$OUT/nvml.csv" 2>/dev/null &
SAMPLER=$!
trap 'kill $SAMPLER 2>/dev/null || true' EXIT

say "live discovery"
"$BIN" devices -o json >"$OUT/devices.json"
"$BIN" devices | tee "$OUT/devices.txt"

say "generation: Switchyard on the GPU vs direct llama-server (same argv, same pin)"
"$VPY" scripts/bench_gpu_engine.py --device gpu --requests 4 --max-tokens 96 --rounds 2 \
  --bin "$BIN" --json "$OUT/generation.json" 2>&1 | tee "$OUT/generation.txt"

say "embeddings: Switchyard ort-cuda vs direct ORT CUDA (batch 32)"
"$VPY" - "$BIN" "$OUT" <<'PY' 2>&1 | tee "$OUT/embeddings.txt"
import json, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path
sys.path.insert(0, "scripts")
from bench_api import Child, child_env, wait_http, post_json, cache_dir
from baseline_ort import short_sentences, tokenizer
import numpy as np, onnxruntime as ort
binary, out = sys.argv[1], Path(sys.argv[2])
sentences = short_sentences(256)
model = cache_dir() / "models/minilm-l6-v2"
sess = ort.InferenceSession(str(model / "model.onnx"), providers=["CUDAExecutionProvider"])
assert sess.get_providers()[0] == "CUDAExecutionProvider", sess.get_providers()
tok = tokenizer(model / "tokenizer.json")
def direct():
    for i in range(0, len(sentences), 32):
        enc = tok.encode_batch(sentences[i:i + 32])
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
direct()
t = time.perf_counter(); [direct() for _ in range(3)]; d = 3 * len(sentences) / (time.perf_counter() - t)
with tempfile.TemporaryDirectory() as tmp:
    up = Child([binary, "up", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
                "--agent-listen", "127.0.0.1:0", "--data-dir", f"{tmp}/data"], child_env(), Path(tmp) / "up.log")
    try:
        fields = dict(w.split("=", 1) for w in up.first_line(120).split() if "=" in w)
        url = "http://" + fields["http"]
        wait_http(url + "/ready", 120)
        status, body, headers = post_json(url + "/v1/embeddings", {"model": "minilm-l6-v2", "input": sentences[:32]})
        for _ in range(20):
            if status == 200: break
            time.sleep(1); status, body, headers = post_json(url + "/v1/embeddings", {"model": "minilm-l6-v2", "input": sentences[:32]})
        placed = (headers.get("x-switchyard-device"), headers.get("x-switchyard-backend"))
        t = time.perf_counter()
        for _ in range(3):
            for i in range(0, len(sentences), 32):
                post_json(url + "/v1/embeddings", {"model": "minilm-l6-v2", "input": sentences[i:i + 32]})
        s = 3 * len(sentences) / (time.perf_counter() - t)
    finally:
        up.close()
print(f"embeddings_direct_ort_cuda {d:.0f}/s")
print(f"embeddings_switchyard {s:.0f}/s placed on {placed}")
print(f"embeddings_ratio {s / d:.2f}x")
(out / "embeddings.json").write_text(json.dumps({"direct": d, "switchyard": s, "placed": placed}))
PY
kill $SAMPLER 2>/dev/null || true

say "table"
"$VPY" - "$OUT" <<'PY' | tee "$OUT/table.txt"
import csv, json, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = [r for r in csv.reader(open(out / "nvml.csv")) if len(r) >= 6]
util = [float(r[1]) for r in rows]; used = [float(r[2]) for r in rows]; total = float(rows[0][3]) if rows else 1
temp = [float(r[4]) for r in rows]
g = json.loads((out / "generation.json").read_text())["median"]
e = json.loads((out / "embeddings.json").read_text())
print("| check | figure | target |")
print("|---|---|---|")
print(f"| generation 1 stream, Switchyard / direct | {g['switchyard@1']['tok_s']:.1f} / {g['direct@1']['tok_s']:.1f} tok/s = {g['switchyard@1']['tok_s']/g['direct@1']['tok_s']:.3f}x | >= 0.97x |")
print(f"| generation 4 streams, Switchyard / direct | {g['switchyard@4']['tok_s']:.1f} / {g['direct@4']['tok_s']:.1f} tok/s = {g['switchyard@4']['tok_s']/g['direct@4']['tok_s']:.3f}x | >= 0.97x |")
print(f"| TTFT p50 @1, Switchyard / direct | {g['switchyard@1']['ttft_p50_ms']:.1f} / {g['direct@1']['ttft_p50_ms']:.1f} ms | +< 5 ms |")
print(f"| embeddings batch 32, Switchyard (on {e['placed']}) / direct ORT CUDA | {e['switchyard']:.0f} / {e['direct']:.0f} /s | |")
if util:
    busy = [u for u in util if u > 0]
    print(f"| GPU utilisation while busy (p50 / max) | {statistics.median(busy or [0]):.0f} / {max(util):.0f} % | > 50 % |")
    print(f"| VRAM used (max) | {max(used):.0f} / {total:.0f} MiB = {100*max(used)/total:.0f} % | < 90 % |")
    print(f"| temperature (max) | {max(temp):.0f} °C | < 80 °C |")
PY
