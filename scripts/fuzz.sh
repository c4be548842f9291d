#!/usr/bin/env bash
# Fuzz Switchyard's own parsers with cargo fuzz (libFuzzer), each target for a bounded time,
# and print a table of executions and crashes.
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET ...]      (default: 60 s, every target)
#
# Targets (fuzz/fuzz_targets/): grpc_messages (every gRPC request message through the strict
# codec and the real services), http_bodies (OpenAI and Ollama JSON bodies through the real
# router), config_toml (controller config sections and the model registry), tokenizer (the
# real prepared tokenizers), gguf_header (the GGUF reader and memory estimate), auth_headers
# (the Authorization header through the real router with configured and scoped tokens).
# Needs the nightly toolchain (rustup) and installs cargo-fuzz into the cache once. The
# corpus grows across runs in ${XDG_CACHE_HOME:-~/.cache}/switchyard/fuzz/corpus; seeds are
# in fuzz/seeds. A crash leaves its input in .../fuzz/artifacts/TARGET/ and the script exits
# 1: reproduce with `cargo +nightly fuzz run TARGET FILE`, then make it a regression test.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/switchyard"
SECS="${1:-60}"
shift || true
ALL=(grpc_messages http_bodies config_toml tokenizer gguf_header auth_headers)
TARGETS=("${@:-${ALL[@]}}")
[ "${#TARGETS[@]}" -gt 0 ] || TARGETS=("${ALL[@]}")
if ! [[ "$SECS" =~ ^[0-9]+$ ]] || [ "$SECS" -lt 1 ]; then
  echo "fuzz: SECONDS_PER_TARGET must be a positive integer, got '$SECS'" >&2
  exit 2
fi
for t in "${TARGETS[@]}"; do
  [[ " ${ALL[*]} " == *" $t "* ]] || { echo "fuzz: unknown target '$t' (targets: ${ALL[*]})" >&2; exit 2; }
done

# The tokenizer target reads the prepared models.
bash scripts/setup.sh >/dev/null
# shellcheck disable=SC1091
source "$CACHE/env.sh"

rustup run nightly rustc --version >/dev/null 2>&1 || {
  echo "fuzz: needs the nightly toolchain: rustup toolchain install nightly" >&2
  exit 2
}
FUZZ_VERSION=0.13.2
TOOLS="$CACHE/tools/cargo-fuzz-$FUZZ_VERSION"
if [ ! -x "$TOOLS/bin/cargo-fuzz" ]; then
  echo "fuzz: installing cargo-fuzz $FUZZ_VERSION into $TOOLS (once)"
  cargo install --locked --quiet --root "$TOOLS" cargo-fuzz --version "$FUZZ_VERSION"
fi
export PATH="$TOOLS/bin:$PATH"

WORK="$CACHE/fuzz"
mkdir -p "$WORK"
# A real GGUF header as the reader's seed (the first 4 MiB of the prepared SmolLM2 file).
GGUF="$SWITCHYARD_MODELS_DIR/smollm2-135m-gguf/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -f "$GGUF" ]; then
  mkdir -p "$WORK/corpus/gguf_header"
  head -c 4194304 "$GGUF" > "$WORK/corpus/gguf_header/smollm2-head.gguf"
fi

echo "fuzz: building ${#TARGETS[@]} target(s) (nightly, no sanitizer: safe Rust; panics and overflows abort)"
for t in "${TARGETS[@]}"; do
  cargo +nightly fuzz build --fuzz-dir fuzz -s none "$t" 2>&1 | grep -E "^(error|warning: unused)" || true
done

LOGS="$WORK/logs"
mkdir -p "$LOGS"
rows=()
failed=0
for t in "${TARGETS[@]}"; do
  corpus="$WORK/corpus/$t"
  artifacts="$WORK/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  echo "fuzz: $t for ${SECS}s"
  marker="$WORK/.started-$t"
  touch "$marker"
  set +e
  cargo +nightly fuzz run --fuzz-dir fuzz -s none "$t" "$corpus" "fuzz/seeds/$t" -- \
    -max_total_time="$SECS" -print_final_stats=1 -artifact_prefix="$artifacts/" \
    -rss_limit_mb=4096 -timeout=10 > "$LOGS/$t.log" 2>&1
  rc=$?
  set -e
  execs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$LOGS/$t.log" | grep -oE '[0-9]+$' | tail -n1)"
  cov="$(grep -oE 'cov: [0-9]+' "$LOGS/$t.log" | tail -n1 | grep -oE '[0-9]+')"
  crashes="$(find "$artifacts" -type f -newer "$marker" | wc -l)"
  if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    failed=1
    [ "$crashes" -gt 0 ] || crashes="rc=$rc"
    echo "fuzz: $t FAILED — see $LOGS/$t.log and $artifacts/" >&2
    grep -E "panicked|ERROR: libFuzzer|SUMMARY" "$LOGS/$t.log" | head -n 5 >&2 || true
  fi
  rows+=("$(printf '%-14s %6s %12s %10s %8s %8s' "$t" "$SECS" "${execs:-?}" "$(( ${execs:-0} / SECS ))" "${cov:-?}" "$crashes")")
done

printf '\n%-14s %6s %12s %10s %8s %8s\n' target seconds execs execs/s cov crashes
for r in "${rows[@]}"; do echo "$r"; done
exit "$failed"
