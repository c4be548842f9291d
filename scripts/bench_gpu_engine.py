#!/usr/bin/env python3
"""GPU-engine benchmark of issue 30 (not a test: figures are printed, never asserted).

Generation through Switchyard, placed on a GPU and served by the llama-server the agent
supervises there, against a direct llama-server started with the SAME argv and the SAME pin
environment (read from the supervised process's /proc/<pid>/cmdline and environ), on the same
device, in the same run:

  --device lavapipe  Mesa's software Vulkan device ([discovery] software_gpu = true): the
                     Vulkan code path on any machine (slow: shaders run on the CPU)
  --device gpu       the host's first real GPU (NVIDIA through CUDA, else Vulkan)

Prints decode tok/s at 1 and 4 streams (aggregate), TTFT p50, and the ratios. Sides run one at
a time (the other idles), alternating per round, so a noisy machine moves both alike. The added
TTFT comes from an interleaved phase over the same prompts (each prompt numbered, so prompt
caching favours neither side). Goals: >= 0.97x tok/s at 1 and at 4 streams, TTFT added < 5 ms.

  python3 scripts/bench_gpu_engine.py [--device lavapipe|gpu] [--requests 2] [--max-tokens 8]
                                      [--rounds 2] [--bin target/release/switchyard] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from bench_api import Child, cache_dir, child_env, find_binary, wait_http  # noqa: E402
from bench_engines import free_port, run, stream_once  # noqa: E402

MODEL = "smollm2-135m-gguf"


def engine_of(parent: int) -> int:
    """The llama-server child of `parent`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm, _, rest = stat.partition(") ")
        if comm.endswith("(llama-server") and int(rest.split()[1]) == parent:
            return int(entry.name)
    raise SystemExit(f"no llama-server child of pid {parent}")


def replicate(pid: int, port: int) -> tuple[list[str], dict[str, str]]:
    """The engine's argv with another port, and its environment."""
    argv = (Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0"))[:-1]
    env = dict(kv.split("=", 1) for kv in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in kv)
    i = argv.index("--port")
    argv[i + 1] = str(port)
    for flag in ("--api-key", "--api-key-file"):  # a locked engine: the direct one is open
        if flag in argv:
            j = argv.index(flag)
            del argv[j:j + 2]
    return argv, env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["lavapipe", "gpu"], default="lavapipe")
    ap.add_argument("--requests", type=int, default=2, help="completions per stream per round")
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--bin", help="switchyard binary (default: target/release, then debug)")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    if min(args.requests, args.max_tokens, args.rounds) < 1:
        ap.error("--requests, --max-tokens and --rounds must be >= 1")
    gguf = cache_dir() / "models/smollm2-135m-gguf/SmolLM2-135M-Instruct.Q4_1.gguf"
    if not gguf.is_file():
        raise SystemExit(f"{gguf} missing: run `bash scripts/setup.sh`")
    binary = find_binary(args.bin)
    env = child_env()
    with tempfile.TemporaryDirectory(prefix="switchyard-bench-gpu-") as tmp:
        tmp = Path(tmp)
        registry = tmp / "registry.toml"
        registry.write_text((REPO / "models/registry.toml").read_text() + f"""
[[model]]
name = "{MODEL}"
stage = "generate"
max_input_tokens = 256
context_tokens = 512
engine = {{ kind = "llama_cpp", gguf = "{gguf}", parallel = 4 }}
""")
        config = tmp / "switchyard.toml"
        config.write_text(f'[models]\nregistry = "{registry}"\n'
                          + ("\n[discovery]\nsoftware_gpu = true\n" if args.device == "lavapipe" else ""))
        up = Child([str(binary), "--config", str(config), "up", "--listen", "127.0.0.1:0",
                    "--http-listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0",
                    "--data-dir", str(tmp / "data")], env, tmp / "up.log")
        direct = None
        try:
            fields = dict(w.split("=", 1) for w in up.first_line(120).split() if "=" in w)
            sport = int(fields["http"].rsplit(":", 1)[1])
            wait_http(f"http://127.0.0.1:{sport}/ready", 120)
            print("bench_gpu_engine: loading the model through Switchyard ...", file=sys.stderr, flush=True)
            deadline = time.monotonic() + 300
            while True:
                try:
                    stream_once(sport, MODEL, "hi", 2)
                    break
                except SystemExit:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(1)
            pid = engine_of(up.proc.pid)
            dport = free_port()
            dargv, denv = replicate(pid, dport)
            pinned = {k: v for k, v in denv.items() if k.startswith(("GGML_", "CUDA_"))}
            print(f"bench_gpu_engine: engine pid {pid}: {' '.join(dargv[1:])}\n  pin env {pinned}",
                  file=sys.stderr, flush=True)
            direct = subprocess.Popen(dargv, env=denv, stdout=subprocess.DEVNULL,
                                      stderr=open(tmp / "direct.log", "wb"), stdin=subprocess.DEVNULL)
            wait_http(f"http://127.0.0.1:{dport}/health", 300)
            stream_once(dport, MODEL, "hi", 2)
            ttft: dict[str, list[float]] = {"direct": [], "switchyard": []}
            for i in range(args.requests * 2):
                pair = [("direct", dport), ("switchyard", sport)]
                for side, port in pair if i % 2 == 0 else pair[::-1]:
                    ttft[side].append(stream_once(port, MODEL, "Name a colour.", 2)[0])
            rows: dict[str, list[dict]] = {}
            for r in range(args.rounds):
                order = [("direct", dport), ("switchyard", sport)]
                for side, port in order if r % 2 == 0 else order[::-1]:
                    for streams in (1, 4):
                        print(f"bench_gpu_engine: round {r + 1} {side}@{streams} ...", file=sys.stderr, flush=True)
                        rows.setdefault(f"{side}@{streams}", []).append(
                            run(port, MODEL, streams, args.requests, args.max_tokens))
        finally:
            up.close()
            if direct is not None:
                direct.terminate()
                direct.wait(timeout=10)
    med = {k: {"tok_s": statistics.median(x["tok_s"] for x in v),
               "ttft_p50_ms": statistics.median(x["ttft_p50_ms"] for x in v)} for k, v in rows.items()}
    inter = {k: statistics.median(v) * 1e3 for k, v in ttft.items()}
    print(f"\nSmolLM2-135M Q4_1 on {args.device} ({pinned}), greedy, {args.max_tokens}-token answers, "
          f"{args.requests} per stream, median of {args.rounds} rounds\n")
    print(f"{'':12} {'1 stream tok/s':>15} {'4 streams tok/s':>16} {'TTFT p50 @1':>12} {'TTFT p50 @4':>12}")
    for side in ("direct", "switchyard"):
        a, b = med[f"{side}@1"], med[f"{side}@4"]
        print(f"{side:12} {a['tok_s']:15.2f} {b['tok_s']:16.2f} {a['ttft_p50_ms']:10.1f}ms {b['ttft_p50_ms']:10.1f}ms")
    r1 = med["switchyard@1"]["tok_s"] / med["direct@1"]["tok_s"]
    r4 = med["switchyard@4"]["tok_s"] / med["direct@4"]["tok_s"]
    added = inter["switchyard"] - inter["direct"]
    ok = lambda c: "MET" if c else "NOT MET"  # noqa: E731
    print(f"\nswitchyard / direct, 1 stream : {r1:.3f}x (goal >= 0.97x) {ok(r1 >= 0.97)}")
    print(f"switchyard / direct, 4 streams: {r4:.3f}x (goal >= 0.97x) {ok(r4 >= 0.97)}")
    print(f"added TTFT p50 (interleaved)  : {added:.1f} ms (goal < 5 ms) {ok(added < 5)}"
          f"  [direct {inter['direct']:.1f} ms, switchyard {inter['switchyard']:.1f} ms]")
    if args.json:
        Path(args.json).write_text(json.dumps({"rounds": rows, "median": med, "ttft_interleaved": inter}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
