#!/usr/bin/env python3
"""Generation-engine benchmark of issue 11 (not a test: figures are printed, never asserted).

In one run on this machine, against ONE `llama-server` process (the CPU build scripts/setup.sh
makes, serving the real SmolLM2-135M-Instruct Q4_1 GGUF with `--parallel 4`):

  direct       the server's own /v1/chat/completions (SSE)
  switchyard   the same server attached to `switchyard up` as `[[agent.endpoints]] kind =
               "openai"` (the proxy code that supervised llama-server engines use too),
               through Switchyard's /v1/chat/completions
  native       Switchyard's own ONNX decoder (model smollm2-135m), for comparison

and prints, for a single stream and for 4 concurrent streams: decode tokens/s (aggregate),
TTFT p50, and the ratios. The added TTFT comes from a separate phase in which the two sides
alternate over the same prompts; every prompt is unique (numbered), so llama-server's prompt
cache favours neither side. Goals: single stream >= 0.95x direct, 4 streams >= 0.9x direct,
added TTFT p50 < 5 ms. Greedy, fixed prompts: both sides produce the same tokens.

  python3 scripts/bench_engines.py [--requests 8] [--max-tokens 96] [--threads 2]
                                   [--bin target/release/switchyard] [--json out.json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from bench_api import Child, cache_dir, child_env, find_binary, wait_http  # noqa: E402

MODEL = "smollm2-gguf"
PROMPTS = [
    "Write a Python function that reverses a string.",
    "Explain what a hash map is in two sentences.",
    "Write a bash loop that prints the numbers 1 to 5.",
    "What is the difference between a list and a tuple in Python?",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_serial = iter(range(1, 1 << 30))


def stream_once(port: int, model: str, prompt: str, max_tokens: int) -> tuple[float, int, float]:
    """One streamed chat completion: (TTFT s, completion tokens, total s). Every request's
    prompt starts with its own number, so llama-server's prompt cache reuses only the chat
    template's prefix, for either side alike."""
    prompt = f"Request {next(_serial)}. {prompt}"
    body = json.dumps({
        "model": model, "stream": True, "temperature": 0, "max_tokens": max_tokens,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": prompt}],
    })
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    start = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise SystemExit(f"{model} on :{port}: HTTP {resp.status} {resp.read()[:300]!r}")
    ttft, tokens, chunks = None, None, 0
    for raw in resp:
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            break
        event = json.loads(data)
        if event.get("usage"):
            tokens = event["usage"].get("completion_tokens")
        for c in event.get("choices") or []:
            if (c.get("delta") or {}).get("content"):
                chunks += 1
                if ttft is None:
                    ttft = time.perf_counter() - start
    total = time.perf_counter() - start
    conn.close()
    return ttft or total, tokens if tokens is not None else chunks, total


def run(port: int, model: str, streams: int, requests: int, max_tokens: int) -> dict:
    """`requests` completions per stream, `streams` at once: aggregate decode tok/s, TTFT."""
    ttfts: list[float] = []
    tokens = [0]
    lock = threading.Lock()

    def worker(k: int) -> None:
        for i in range(requests):
            t, n, _ = stream_once(port, model, PROMPTS[(k + i) % len(PROMPTS)], max_tokens)
            with lock:
                ttfts.append(t)
                tokens[0] += n

    stream_once(port, model, PROMPTS[0], 8)  # warm (load, caches)
    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {"tok_s": tokens[0] / wall, "ttft_p50_ms": statistics.median(ttfts) * 1e3,
            "tokens": tokens[0], "wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=8, help="completions per stream (default 8)")
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--threads", type=int, default=2, help="llama-server -t (default 2)")
    ap.add_argument("--bin", help="switchyard binary (default: target/release, then debug)")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    if args.requests < 1 or args.max_tokens < 1 or args.threads < 1:
        ap.error("--requests, --max-tokens and --threads must be >= 1")

    servers = sorted(cache_dir().glob("engines/llama.cpp-*/llama-server"))
    ggufs = sorted(cache_dir().glob("models/**/SmolLM2-135M-Instruct*.gguf"))
    if not servers or not ggufs:
        raise SystemExit("llama-server or the SmolLM2 GGUF is missing: run `bash scripts/setup.sh`")
    binary = find_binary(args.bin)
    env = child_env()
    with tempfile.TemporaryDirectory(prefix="switchyard-bench-engines-") as tmp:
        tmp = Path(tmp)
        lport = free_port()
        llama = subprocess.Popen(
            [str(servers[-1]), "-m", str(ggufs[0]), "--alias", MODEL, "--host", "127.0.0.1",
             "--port", str(lport), "--jinja", "--parallel", "4", "--ctx-size", "8192",
             "-t", str(args.threads)],
            stdout=subprocess.DEVNULL, stderr=open(tmp / "llama.log", "wb"), stdin=subprocess.DEVNULL)
        up = None
        try:
            wait_http(f"http://127.0.0.1:{lport}/health", 120)
            config = tmp / "switchyard.toml"
            config.write_text(f'[[agent.endpoints]]\nname = "llama"\nkind = "openai"\nurl = "http://127.0.0.1:{lport}"\n')
            up = Child([str(binary), "--config", str(config), "up", "--listen", "127.0.0.1:0",
                        "--http-listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0",
                        "--data-dir", str(tmp / "data")], env, tmp / "up.log")
            fields = dict(w.split("=", 1) for w in up.first_line(120).split() if "=" in w)
            sport = int(fields["http"].rsplit(":", 1)[1])
            wait_http(f"http://127.0.0.1:{sport}/ready", 120)
            deadline = time.monotonic() + 60
            while True:  # the endpoint's models appear after the agent's first poll
                try:
                    stream_once(sport, MODEL, "hi", 2)
                    break
                except SystemExit:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            # Added TTFT: the two sides alternate (order swapped every pair) over the same
            # prompts.
            ttft: dict[str, list[float]] = {"direct": [], "switchyard": []}
            for i in range(args.requests * 2):
                p = PROMPTS[i % len(PROMPTS)]
                pair = [("direct", lport), ("switchyard", sport)]
                for side, port in pair if i % 2 == 0 else pair[::-1]:
                    ttft[side].append(stream_once(port, MODEL, p, 16)[0])
            results: dict[str, dict] = {
                "ttft_interleaved": {k: statistics.median(v) * 1e3 for k, v in ttft.items()}
            }
            for streams in (1, 4):
                for side, port, model in (("direct", lport, MODEL), ("switchyard", sport, MODEL),
                                          ("native", sport, "smollm2-135m")):
                    key = f"{side}@{streams}"
                    print(f"bench_engines: {key} ...", file=sys.stderr, flush=True)
                    results[key] = run(port, model, streams, args.requests, args.max_tokens)
        finally:
            if up is not None:
                up.close()
            llama.terminate()
            llama.wait(timeout=10)

    print(f"\nSmolLM2-135M Q4_1, one llama-server --parallel 4 -t {args.threads}, greedy, "
          f"{args.max_tokens}-token answers, {args.requests} per stream\n")
    print(f"{'':24} {'1 stream tok/s':>15} {'4 streams tok/s':>16} {'TTFT p50 @1':>12} {'TTFT p50 @4':>12}")
    for side in ("direct", "switchyard", "native"):
        a, b = results[f"{side}@1"], results[f"{side}@4"]
        print(f"{side:24} {a['tok_s']:15.1f} {b['tok_s']:16.1f} {a['ttft_p50_ms']:10.1f}ms {b['ttft_p50_ms']:10.1f}ms")
    d1, d4, s1, s4 = (results[k] for k in ("direct@1", "direct@4", "switchyard@1", "switchyard@4"))
    ratio1, ratio4 = s1["tok_s"] / d1["tok_s"], s4["tok_s"] / d4["tok_s"]
    inter = results["ttft_interleaved"]
    added = inter["switchyard"] - inter["direct"]
    print(f"\nswitchyard / direct, 1 stream : {ratio1:.2f}x  (goal >= 0.95x) {'MET' if ratio1 >= 0.95 else 'NOT MET'}")
    print(f"switchyard / direct, 4 streams: {ratio4:.2f}x  (goal >= 0.90x) {'MET' if ratio4 >= 0.9 else 'NOT MET'}")
    print(f"added TTFT p50 at 1 stream   : {added:.1f} ms (goal < 5 ms) {'MET' if added < 5 else 'NOT MET'}"
          f"  [interleaved: direct {inter['direct']:.1f} ms, switchyard {inter['switchyard']:.1f} ms]")
    print(f"native decoder at 4 streams  : {results['native@4']['tok_s']:.1f} tok/s = "
          f"{results['native@4']['tok_s'] / d4['tok_s']:.2f}x direct llama-server")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
