#!/usr/bin/env python3
"""Client-API benchmarks of issues 6 and 12 (not tests: figures are printed, never asserted).

Starts `switchyard up` itself (port 0, no API token), and the baselines, on this machine:

  (d) issue 12: embeddings/s through the HTTP API at concurrency 32 (single sentences) vs the
      best direct backend at batch 32 (scripts/baseline_ort.py embed, onnxruntime and
      OpenVINO, both explicitly f32). Goal >= 0.9x.
  (e) issue 12: at concurrency 1, the added latency over a direct single inference: HTTP round
      trip p50 (one sentence) minus the direct single-sentence call p50 of the backend
      Switchyard ran on (baseline_ort.py embed --latency). Goal p50 < 1 ms.
  Both print the precision each side ran at (Switchyard's x-switchyard-precision header, the
  precision the direct runtime reads back).

  (a) embeddings/s at concurrency 32, one sentence per HTTP request:
      Switchyard (controller → agent, dynamic batching) vs scripts/baseline_embed_server.py
      (one onnxruntime call per request). Goal ≥ 3.5×.
  (b) HTTP batch-32 throughput (requests of 32 sentences, one at a time) vs direct
      onnxruntime batch-32 (scripts/baseline_ort.py embed). Goal ≥ 0.95×.
  (c) added latency of the controller + agent hop on loopback, from sequential single-sentence
      requests: per request, server-side hop = x-total-time − x-queue-time − x-inference-time
      (time inside Switchyard that is neither batching queue nor device compute: HTTP handler,
      pipeline, scheduler, gRPC to the agent and back, agent bookkeeping); and client-side
      overhead = client round trip − queue − compute − median round trip of GET /health (the
      floor of this client + loopback HTTP). Goal p50 < 1 ms, p99 < 3 ms.

Everything shares the same CPU cores, and one load generator (asyncio, raw HTTP/1.1 keep-alive
connections, so the client costs little) drives both servers.

  python3 scripts/bench_api.py [--seconds 10] [--concurrency 32] [--threads N] [--rounds 3]
                               [--bin target/release/switchyard] [--json out.json]

(d) is also measured interleaved: --rounds rounds of Switchyard under wrk (4 s) then both direct
runtimes at batch 32, the median round's ratio printed last (the machine's speed drifts
between phases more than the difference being measured).

Use the venv python (<cache>/venv/bin/python) or any python with numpy, onnxruntime and
tokenizers for the baselines. Build with `cargo build --release -p switchyard` for
representative figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from baseline_ort import short_sentences  # noqa: E402


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "switchyard"


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env_sh = cache_dir() / "env.sh"
    if env_sh.is_file():
        for line in env_sh.read_text().splitlines():
            line = line.strip()
            if line.startswith("export ") and "=" in line:
                k, _, v = line[len("export "):].partition("=")
                parts = shlex.split(v)
                env.setdefault(k, parts[0] if parts else "")
    env.setdefault("SWITCHYARD_LOG", "warn")
    return env


def find_binary(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get("SWITCHYARD_BIN"):
        return Path(os.environ["SWITCHYARD_BIN"])
    roots = [Path(os.environ["CARGO_TARGET_DIR"])] if os.environ.get("CARGO_TARGET_DIR") else []
    roots.append(REPO / "target")
    for root in roots:
        for profile in ("release", "debug"):
            p = root / profile / "switchyard"
            if p.is_file():
                return p
    raise SystemExit("switchyard binary not found: cargo build --release -p switchyard, or --bin")


class Child:
    """A child process whose first stdout line is read, then drained; killed on close."""

    def __init__(self, cmd: list[str], env: dict[str, str], stderr_path: Path):
        self.stderr_path = stderr_path
        with open(stderr_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=env)
        self._first: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        self._first.append(self.proc.stdout.readline().decode(errors="replace"))
        for _ in self.proc.stdout:
            pass

    def first_line(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while not self._first and time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.05)
        if not self._first or not self._first[0].strip():
            raise SystemExit(f"no ready line; stderr:\n{self.stderr_path.read_text(errors='replace')[-3000:]}")
        return self._first[0].strip()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def post_json(url: str, body: dict, timeout: float = 120.0) -> tuple[int, dict, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}"), dict(e.headers)


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready after {timeout}s")


def warm(url: str, model: str, timeout: float = 180.0) -> dict:
    """Retries until the model answers (the agent may still be loading it)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        status, body, headers = post_json(f"{url}/v1/embeddings", {"model": model, "input": ["warm up"] * 4})
        if status == 200:
            return headers
        last = (status, body)
        time.sleep(0.5)
    raise SystemExit(f"{model} never answered: {last}")


# ---------------------------------------------------------------- load generator


class Conn:
    """One keep-alive HTTP/1.1 connection (asyncio streams, Content-Length bodies only)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.r: asyncio.StreamReader | None = None
        self.w: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        if self.w is None:
            self.r, self.w = await asyncio.open_connection(self.host, self.port)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.w.write(head + body)
        await self.w.drain()
        assert self.r is not None
        status_line = await self.r.readline()
        if not status_line:
            raise ConnectionError("connection closed")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while True:
            line = await self.r.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            k, _, v = line.decode().partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        data = await self.r.readexactly(n) if n else b""
        return status, headers, data


def split_url(url: str) -> tuple[str, int]:
    hostport = url.split("://", 1)[1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    return host, int(port)


async def closed_loop(url: str, bodies: list[bytes], concurrency: int, seconds: float, per_request: int):
    """`concurrency` clients each sending the next body as soon as the previous answered.
    Returns (items/s, requests, errors); the first failure of each status is printed."""
    host, port = split_url(url)
    done = errors = 0
    seen: set[int] = set()
    stop_at = time.perf_counter() + seconds
    start = time.perf_counter()

    async def worker(k: int) -> None:
        nonlocal done, errors
        c = Conn(host, port)
        i = k
        while time.perf_counter() < stop_at:
            status, _, data = await c.request("POST", "/v1/embeddings", bodies[i % len(bodies)])
            i += concurrency
            if status == 200:
                done += 1
            else:
                errors += 1
                if status not in seen:
                    seen.add(status)
                    print(f"    HTTP {status}: {data[:300].decode(errors='replace')}", flush=True)

    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    elapsed = time.perf_counter() - start
    return done * per_request / elapsed, done, errors


WRK_LUA = """
local bodies = {}
local i = 0
local f = assert(io.open(os.getenv("SY_BODIES"), "r"))
for line in f:lines() do bodies[#bodies + 1] = line end
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, "/v1/embeddings", nil, bodies[i])
end
"""


def embed_batches(url: str) -> tuple[float, float]:
    """(sum, count) of the embed stage's batch-size histogram on Switchyard's /metrics: the
    mean batch a request rode in between two scrapes is Δsum / Δcount."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("switchyard_stage_batch_size_") and 'stage="embed"' in line:
            name, _, value = line.rpartition(" ")
            if name.startswith("switchyard_stage_batch_size_sum"):
                total += float(value)
            elif name.startswith("switchyard_stage_batch_size_count"):
                count += float(value)
    return total, count


def wrk_loop(url: str, bodies: list[bytes], concurrency: int, seconds: float, tmp: Path):
    """Like `closed_loop` with wrk (C, one thread per core is too many here: 1 thread), so the
    client costs the server little CPU. Returns (successful requests/s, requests, errors) or
    None when wrk is not installed: wrk's own rate counts error responses too, and a 503 is
    answered far faster than an embedding."""
    import shutil

    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    (tmp / "bodies.txt").write_bytes(b"\n".join(bodies) + b"\n")
    (tmp / "bodies.lua").write_text(WRK_LUA)
    env = dict(os.environ, SY_BODIES=str(tmp / "bodies.txt"))
    out = subprocess.run([wrk, "-t1", f"-c{concurrency}", f"-d{max(1, int(seconds))}s", "-s",
                          str(tmp / "bodies.lua"), url], capture_output=True, text=True, env=env)
    rps = done = errors = 0
    for line in out.stdout.splitlines():
        line = line.strip()
        if line.startswith("Requests/sec:"):
            rps = float(line.split()[1])
        elif "requests in" in line:
            done = int(line.split()[0])
        elif line.startswith("Non-2xx or 3xx responses:"):
            errors = int(line.split()[-1])
    if done:
        rps *= (done - errors) / done
    return rps, done, errors


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def latency(url: str, model: str, n: int) -> dict:
    host, port = split_url(url)
    c = Conn(host, port)
    health = []
    for _ in range(max(50, n // 4)):
        t = time.perf_counter()
        await c.request("GET", "/health")
        health.append((time.perf_counter() - t) * 1e3)
    floor = statistics.median(health)
    server_hop, client_overhead, rtts, queues, computes = [], [], [], [], []
    sentences = short_sentences(64)
    for i in range(n):
        body = json.dumps({"model": model, "input": sentences[i % len(sentences)]}).encode()
        t = time.perf_counter()
        status, h, _ = await c.request("POST", "/v1/embeddings", body)
        rtt = (time.perf_counter() - t) * 1e3
        if status != 200:
            continue
        q, inf, total = float(h["x-queue-time"]), float(h["x-inference-time"]), float(h["x-total-time"])
        rtts.append(rtt)
        queues.append(q)
        computes.append(inf)
        server_hop.append(total - q - inf)
        client_overhead.append(rtt - q - inf - floor)
    return {
        "requests": len(rtts),
        "health_rtt_p50_ms": floor,
        "rtt_p50_ms": pct(rtts, 50),
        "queue_p50_ms": pct(queues, 50),
        "compute_p50_ms": pct(computes, 50),
        "server_hop_p50_ms": pct(server_hop, 50),
        "server_hop_p99_ms": pct(server_hop, 99),
        "client_overhead_p50_ms": pct(client_overhead, 50),
        "client_overhead_p99_ms": pct(client_overhead, 99),
    }


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=None)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3, help="(d) interleaved rounds of switchyard and direct")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="baseline onnxruntime threads")
    ap.add_argument("--latency-requests", type=int, default=400)
    ap.add_argument("--model", default="minilm-l6-v2")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)

    env = child_env()
    results: dict = {"machine_cpus": os.cpu_count()}

    def direct(*extra: str) -> dict[str, str]:
        out = subprocess.run([sys.executable, str(REPO / "scripts" / "baseline_ort.py"), "embed", "--threads",
                              str(args.threads), *extra], capture_output=True, text=True, env=env, check=True)
        return dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)

    tmp = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
    sy = Child(
        [str(find_binary(args.bin)), "up", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
         "--agent-listen", "127.0.0.1:0"],
        env,
        tmp / "switchyard.stderr",
    )
    base = None
    try:
        fields = dict(w.split("=", 1) for w in sy.first_line(120).split() if "=" in w)
        sy_url = f"http://{fields['http']}"
        wait_http(f"{sy_url}/ready", 120)
        headers = warm(sy_url, args.model)
        results["switchyard_backend"] = headers.get("x-switchyard-backend")
        results["switchyard_device"] = headers.get("x-switchyard-device")
        results["switchyard_precision"] = headers.get("x-switchyard-precision")
        print(f"switchyard at {sy_url}: {args.model} on {results['switchyard_device']} "
              f"via {results['switchyard_backend']} at {results['switchyard_precision']}", flush=True)

        singles = [json.dumps({"model": args.model, "input": s}).encode() for s in short_sentences(256)]
        s32 = short_sentences(256)
        batches = [json.dumps({"model": args.model, "input": s32[i:i + 32]}).encode() for i in range(0, 256, 32)]

        # (a) Switchyard side.
        asyncio.run(closed_loop(sy_url, singles, args.concurrency, 2.0, 1))  # warm the batcher
        sy_a, n, err = asyncio.run(closed_loop(sy_url, singles, args.concurrency, args.seconds, 1))
        print(f"(a) switchyard  c={args.concurrency} single-sentence: {sy_a:8.1f} embeddings/s ({n} ok, {err} errors)", flush=True)
        # (d) the same load from wrk, whose client costs the two sides' shared cores less.
        sy_d = sy_a
        before = embed_batches(sy_url)
        w = wrk_loop(sy_url, singles, args.concurrency, args.seconds, tmp)
        if w is not None:
            sy_d, n, err = w
            after = embed_batches(sy_url)
            mean = (after[0] - before[0]) / max(1.0, after[1] - before[1])
            results["d_mean_batch"] = mean
            print(f"(d) switchyard  c={args.concurrency} single-sentence (wrk): {sy_d:8.1f} embeddings/s ({n} ok, {err} errors; "
                  f"mean batch a request rode in: {mean:.1f} inputs)", flush=True)
        results["d_load_generator"] = "wrk" if w is not None else "python"
        # (d) interleaved: this machine's speed drifts between phases, so Switchyard and the
        # direct runtimes alternate, round after round, and the median round's ratio counts.
        rounds = []
        for r in range(args.rounds if w is not None else 0):
            sy_r, n_r, err_r = wrk_loop(sy_url, singles, args.concurrency, 4, tmp)
            direct_r = {rt: float(direct("--batch", "32", "--runtime", rt, "--precision", "f32",
                                         "--repeat", "2")["sentences_per_s"])
                        for rt in ("onnxruntime", "openvino")}
            best_r = max(direct_r.values())
            rounds.append({"switchyard": sy_r, "errors": err_r, "direct": direct_r, "ratio": sy_r / best_r})
            print(f"(d) round {r + 1}: switchyard {sy_r:7.1f}/s ({n_r} requests, {err_r} errors), direct onnxruntime "
                  f"{direct_r['onnxruntime']:7.1f}/s, openvino {direct_r['openvino']:7.1f}/s: {sy_r / best_r:.2f}x", flush=True)
        results["d_rounds"] = rounds
        # (b) Switchyard batch-32, one request at a time.
        asyncio.run(closed_loop(sy_url, batches, 1, 1.0, 32))
        sy_b, n, err = asyncio.run(closed_loop(sy_url, batches, 1, args.seconds, 32))
        print(f"(b) switchyard  batch-32 sequential:     {sy_b:8.1f} sentences/s ({n} ok, {err} errors)", flush=True)
        # (c) latency.
        lat = asyncio.run(latency(sy_url, args.model, args.latency_requests))
        results["latency"] = lat
        print(f"(c) server-side hop p50 {lat['server_hop_p50_ms']:.3f} ms  p99 {lat['server_hop_p99_ms']:.3f} ms; "
              f"client-side overhead p50 {lat['client_overhead_p50_ms']:.3f} ms  p99 {lat['client_overhead_p99_ms']:.3f} ms "
              f"(HTTP floor {lat['health_rtt_p50_ms']:.3f} ms; round trip p50 {lat['rtt_p50_ms']:.3f} ms = "
              f"queue p50 {lat['queue_p50_ms']:.3f} + compute p50 {lat['compute_p50_ms']:.3f} + the rest)", flush=True)
    finally:
        sy.close()

    try:
        # (a) baseline server, alone on the machine.
        base = Child([sys.executable, str(REPO / "scripts" / "baseline_embed_server.py"), "--port", "0",
                      "--threads", str(args.threads)], env, tmp / "baseline.stderr")
        port = int(base.first_line(60).split()[1])
        base_url = f"http://127.0.0.1:{port}"
        wait_http(f"{base_url}/health", 60)
        asyncio.run(closed_loop(base_url, singles, args.concurrency, 2.0, 1))
        base_a, n, err = asyncio.run(closed_loop(base_url, singles, args.concurrency, args.seconds, 1))
        print(f"(a) baseline    c={args.concurrency} single-sentence: {base_a:8.1f} embeddings/s ({n} ok, {err} errors)", flush=True)
    finally:
        if base is not None:
            base.close()

    # (b, d) direct batch-32 on both runtimes, explicitly f32.
    batch32 = {rt: direct("--batch", "32", "--runtime", rt, "--precision", "f32") for rt in ("onnxruntime", "openvino")}
    for rt, r in batch32.items():
        print(f"(d) direct {rt:11} batch-32: {float(r['sentences_per_s']):8.1f} sentences/s at {r['precision']}", flush=True)
    ort_b = float(batch32["onnxruntime"]["sentences_per_s"])
    best_rt = max(batch32, key=lambda rt: float(batch32[rt]["sentences_per_s"]))
    best_b = float(batch32[best_rt]["sentences_per_s"])
    # (e) direct single-sentence latency of the runtime Switchyard ran on.
    sy_rt = "openvino" if results.get("switchyard_backend") == "openvino" else "onnxruntime"
    single = direct("--runtime", sy_rt, "--precision", "f32", "--latency", str(args.latency_requests))
    direct_p50 = float(single["single_p50_ms"])
    print(f"(e) direct {sy_rt} single sentence: p50 {direct_p50:.3f} ms at {single['precision']}", flush=True)

    results.update({
        "a_switchyard_embeddings_per_s": sy_a, "a_baseline_embeddings_per_s": base_a,
        "a_ratio": sy_a / base_a, "b_switchyard_sentences_per_s": sy_b, "b_direct_ort_sentences_per_s": ort_b,
        "b_ratio": sy_b / ort_b,
        "d_best_direct_runtime": best_rt, "d_best_direct_sentences_per_s": best_b,
        "d_direct_precision": batch32[best_rt]["precision"], "d_switchyard_embeddings_per_s": sy_d,
        "d_ratio": sy_d / best_b,
        "e_http_rtt_p50_ms": lat["rtt_p50_ms"], "e_direct_single_p50_ms": direct_p50,
        "e_added_p50_ms": lat["rtt_p50_ms"] - direct_p50, "e_direct_precision": single["precision"],
    })
    print()
    print(f"(a) ratio {results['a_ratio']:.2f}x   (goal >= 3.5x)")
    print(f"(b) ratio {results['b_ratio']:.2f}x   (goal >= 0.95x)")
    print(f"(c) hop p50 {lat['server_hop_p50_ms']:.3f} ms, p99 {lat['server_hop_p99_ms']:.3f} ms  (goal < 1 ms, < 3 ms)")
    print(f"(d) ratio {results['d_ratio']:.2f}x   HTTP c={args.concurrency} ({results['d_load_generator']}) {sy_d:.1f}/s at "
          f"{results.get('switchyard_precision')} vs direct {best_rt} batch-32 {best_b:.1f}/s at "
          f"{results['d_direct_precision']}  (goal >= 0.9x)")
    if rounds:
        ratios = sorted(x["ratio"] for x in rounds)
        results["d_interleaved_median_ratio"] = statistics.median(ratios)
        print(f"(d) interleaved, median of {len(rounds)} rounds: {results['d_interleaved_median_ratio']:.2f}x "
              f"(rounds {', '.join(f'{x:.2f}' for x in ratios)}; goal >= 0.9x)")
    print(f"(e) added p50 {results['e_added_p50_ms']:.3f} ms   HTTP c=1 round trip p50 {lat['rtt_p50_ms']:.3f} ms at "
          f"{results.get('switchyard_precision')} - direct {sy_rt} single p50 {direct_p50:.3f} ms at "
          f"{single['precision']}  (goal < 1 ms)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
