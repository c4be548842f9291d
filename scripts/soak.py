#!/usr/bin/env python3
"""Soak benchmark on the network-namespace cluster (scripts/netns-cluster.sh): 200 concurrent
HTTP clients send embedding requests to the controller's OpenAI API for 60 s while the
controller's and both agents' resident memory is sampled.

    sudo python3 scripts/soak.py [--clients 200] [--seconds 60] [--warmup 30]

Passes (exit 0) with 0 failed requests (non-2xx answers, connect/read/write errors, timeouts)
and every process's RSS growth under 10 %, measured from the end of the warm-up to the end of
the soak. The warm-up first sends one request of each batch size 1..32 (OpenVINO's CPU plugin
keeps compiled primitives per input shape, a few MB each: memory that grows with every new
(batch, sequence length) pair until each has been seen, then stays flat); then one wrk run of
--warmup + --seconds seconds, whose first --warmup seconds are the warm-up (models loaded,
connections open, pools and buffers grown): the RSS compared is the steady state under the
same clients, and errors are counted over the whole run. Every request embeds the same
sentence, so the shapes are the batch sizes alone. The
load generator is wrk (Debian `wrk`; scripts/setup.sh installs it as root): one C process,
so the clients don't eat the cores the cluster runs on. Not a test: a benchmark that prints
its figures. Embeddings only: 200 concurrent generations would only measure a CPU queue.
Meanwhile an open web console is simulated: its two data routes (/v1/console/cluster and
/v1/console/requests) polled every 2 s, as the page does; its errors count too.
"""

from __future__ import annotations

import argparse
import secrets
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "netns-cluster.sh"
NAME, NET = "sysoak", "10.77.251"
HOSTS = ["ctl", "agent-1", "agent-2"]

# The cluster's client APIs listen beyond loopback, so they require a token (secure as
# shipped): netns-cluster.sh configures this one (SY_API_TOKEN).
TOKEN = secrets.token_hex(16)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SENTENCE = "soak request: a short sentence to embed for the soak benchmark"
WRK_LUA = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer TOKEN"
wrk.body = '{"model":"minilm-l6-v2","input":"SENTENCE"}'
done = function(summary, latency, requests)
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def binary() -> str:
    if os.environ.get("SWITCHYARD_BIN"):
        return os.environ["SWITCHYARD_BIN"]
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    for profile in ("release", "debug"):
        p = target / profile / "switchyard"
        if p.is_file():
            return str(p)
    sys.exit("soak: no switchyard binary: cargo build --release -p switchyard (or set SWITCHYARD_BIN)")


def cluster(*args: str, env: dict) -> str:
    out = subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"soak: netns-cluster.sh {' '.join(args)} failed:\n{out.stderr}")
    return out.stdout.strip()


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def wrk(url: str, clients: int, seconds: int, lua: Path) -> dict:
    cmd = ["wrk", "-t", "2", "-c", str(clients), "-d", f"{seconds}s", "--timeout", "30s",
           "-s", str(lua), f"{url}/v1/embeddings"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    line = next((l for l in out.stdout.splitlines() if l.startswith("WRK_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"soak: wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return json.loads(line[len("WRK_JSON "):])


def sweep(url: str) -> None:
    """One request of each batch size the batcher can form (1..32) on each agent's device:
    the shapes the soak will use, seen once."""
    def post(k: int) -> None:
        body = json.dumps({"model": "minilm-l6-v2", "input": [SENTENCE] * k}).encode()
        req = urllib.request.Request(f"{url}/v1/embeddings", data=body,
                                     headers={"Content-Type": "application/json", **AUTH})
        with urllib.request.urlopen(req, timeout=120) as resp:
            resp.read()

    # Two at a time, so that placement (spread, by requests in flight) gives each agent one.
    for _ in range(2):
        for k in range(1, 33):
            pair = [threading.Thread(target=post, args=(k,)) for _ in range(2)]
            for t in pair:
                t.start()
            for t in pair:
                t.join()


def console_poller(url: str, stop: threading.Event, counts: dict) -> None:
    """What an open console tab does: both of its data routes every 2 s."""
    while not stop.is_set():
        for path in ("/v1/console/cluster", "/v1/console/requests"):
            try:
                with urllib.request.urlopen(urllib.request.Request(url + path, headers=AUTH), timeout=10) as r:
                    r.read()
                counts["ok"] += 1
            except Exception:  # noqa: BLE001 - every failure counts the same
                counts["errors"] += 1
        stop.wait(2.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=30)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("soak: needs root (network namespaces): sudo python3 scripts/soak.py")
    if shutil.which("wrk") is None:
        sys.exit("soak: wrk is missing: apt-get install wrk (or run scripts/setup.sh as root)")
    env = dict(os.environ, SY_NETNS_NAME=NAME, SY_NETNS_NET=NET, SWITCHYARD_BIN=binary(), SY_API_TOKEN=TOKEN)
    env.setdefault("SWITCHYARD_THREADS", "2")
    env.setdefault("SWITCHYARD_LOG", "warn")
    url = f"http://{NET}.1:8080"
    print(f"soak: binary {env['SWITCHYARD_BIN']}; cluster {NAME} on {NET}.0/24")
    cluster("up", env=env)
    try:
        pids = {h: int(cluster("pid", h, env=env)) for h in HOSTS}
        with tempfile.TemporaryDirectory() as d:
            lua = Path(d) / "embed.lua"
            lua.write_text(WRK_LUA.replace("SENTENCE", SENTENCE).replace("TOKEN", TOKEN))
            sweep(url)
            # One wrk run: the warm-up is its first --warmup seconds, so the connections stay
            # open and the RSS compared is the steady state under the same 200 clients.
            result: dict = {}
            total = args.warmup + args.seconds
            runner = threading.Thread(target=lambda: result.update(wrk(url, args.clients, total, lua)))
            console = {"ok": 0, "errors": 0}
            stop_console = threading.Event()
            poller = threading.Thread(target=console_poller, args=(url, stop_console, console), daemon=True)
            started = time.monotonic()
            runner.start()
            poller.start()
            time.sleep(args.warmup)
            base = {h: rss(p) for h, p in pids.items()}
            series = {h: [v] for h, v in base.items()}
            peak = dict(base)
            # Until 2 s before wrk stops (then its connections close).
            while time.monotonic() - started < total - 2:
                time.sleep(min(10.0, max(0.1, total - 2 - (time.monotonic() - started))))
                for h, p in pids.items():
                    v = rss(p)
                    peak[h] = max(peak[h], v)
                    series[h].append(v)
            end = {h: series[h][-1] for h in HOSTS}
            runner.join()
            stop_console.set()
            poller.join(timeout=15)
            elapsed = time.monotonic() - started
            run = result
        if not run:
            sys.exit("soak: wrk failed (see above)")
        errors = sum(run[k] for k in ("connect", "read", "write", "status", "timeout")) + console["errors"]
        print(f"soak: console polls (an open console tab): {console['ok']} answered, {console['errors']} failed")
        alive = all(Path(f"/proc/{p}").exists() for p in pids.values())
        print(f"soak: {args.clients} clients x {args.warmup} s warm-up + {args.seconds} s ({elapsed:.1f} s wall): {run['requests']} requests "
              f"({run['requests'] / (run['duration_us'] / 1e6):.0f}/s), {errors} errors "
              f"(connect {run['connect']}, read {run['read']}, write {run['write']}, non-2xx {run['status']}, "
              f"timeout {run['timeout']}); latency p50 {run['p50_us'] / 1000:.1f} ms, p99 {run['p99_us'] / 1000:.1f} ms, "
              f"max {run['max_us'] / 1000:.1f} ms (warm-up included)")
        worst = 0.0
        for h in HOSTS:
            growth = (end[h] - base[h]) / base[h]
            worst = max(worst, growth)
            print(f"soak RSS {h:8s}: {base[h] / 2**20:7.1f} MiB after the warm-up -> {end[h] / 2**20:7.1f} MiB {args.seconds} s later "
                  f"({growth * 100:+.1f} %), peak {peak[h] / 2**20:.1f} MiB; every 10 s: "
                  + " ".join(f"{v / 2**20:.1f}" for v in series[h]))
        ok = errors == 0 and worst < 0.10 and alive
        print(f"soak: {'PASS' if ok else 'FAIL'} (0 errors and RSS growth < 10 % required; processes alive: {alive})")
        return 0 if ok else 1
    finally:
        cluster("down", env=env)


if __name__ == "__main__":
    sys.exit(main())
