#!/usr/bin/env bash
# The main job in one command: prepare models, build, start a single-host cluster
# (`switchyard up` = controller + local agent), answer a real prompt through all three
# stages (classify → embed → generate on the GGUF model through llama-server) and show the
# trace and the cluster status.
#
#   bash scripts/quickstart.sh ["your prompt"]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/switchyard"
PROMPT="${1:-Write a Python function that checks if a number is prime}"

bash scripts/setup.sh
# shellcheck disable=SC1091
source "$CACHE/env.sh"
echo "quickstart: building switchyard (release)"
cargo build --release -q -p switchyard
BIN="$ROOT/target/release/switchyard"

# Generation through the real SmolLM2-135M GGUF on a supervised llama-server (built by
# setup.sh): the shipped registry plus models/gguf.toml, each tier routed to a GGUF model
# first and to the native ONNX decoder as its fallback.
QS="$CACHE/quickstart"
mkdir -p "$QS"
cat models/registry.toml models/gguf.toml >"$QS/registry.toml"
cat >"$QS/switchyard.toml" <<TOML
[models]
registry = "$QS/registry.toml"

[routes]
fast = ["smollm2-135m-gguf", "smollm2-135m"]
code = ["smollm2-135m-gguf-code", "smollm2-135m-code"]
heavy = ["smollm2-135m-gguf", "smollm2-135m-heavy"]
TOML
LOG="$(mktemp -t switchyard-up.XXXXXX.log)"
OUT="$(mktemp -t switchyard-up.XXXXXX.out)"
"$BIN" --config "$QS/switchyard.toml" up --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --agent-listen 127.0.0.1:0 >"$OUT" 2>"$LOG" &
UP=$!
trap 'kill $UP 2>/dev/null; wait $UP 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  grep -q "grpc=" "$OUT" 2>/dev/null && break
  kill -0 $UP 2>/dev/null || { cat "$LOG" >&2; echo "quickstart: switchyard up exited" >&2; exit 1; }
  sleep 0.1
done
GRPC="$(grep -o 'grpc=[^ ]*' "$OUT" | head -1 | cut -d= -f2)"
HTTP="$(grep -o 'http=[^ ]*' "$OUT" | head -1 | cut -d= -f2)"
export SWITCHYARD_CONTROLLER="http://$GRPC"
for _ in $(seq 1 100); do
  "$BIN" status -o json 2>/dev/null | grep -q '"state": "ready"' && break
  sleep 0.1
done
echo "quickstart: cluster up (gRPC $GRPC, HTTP http://$HTTP; log $LOG)"
echo
# Documents for the retrieval stage: chunked by the embedding model's tokenizer, embedded by
# the cluster and kept in the controller's document store (re-running adds nothing twice).
"$BIN" docs add \
  --text "A prime number is a natural number greater than 1 with no divisors other than 1 and itself." \
  --text "To test primality, trial division by every integer up to the square root of n is enough." \
  --text "Proxmox VE is a virtualization platform based on Debian."
echo "\$ switchyard run \"$PROMPT\" --retrieve"
"$BIN" run "$PROMPT" --retrieve --max-tokens 160
echo
echo "\$ switchyard status"
"$BIN" status
echo
echo "Prometheus metrics (http://$HTTP/metrics), stage counts:"
python3 -c 'import sys, urllib.request; print("".join(l for l in urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().splitlines(True) if l.startswith("switchyard_stage_duration_seconds_count")), end="")' "http://$HTTP/metrics" \
  || echo "(metrics not reachable)"
