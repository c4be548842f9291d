#!/usr/bin/env python3
"""Classify-decision benchmark of issue 36 (not a test: figures are printed, never asserted).

The classify decision is what routing costs a request: the classify stage's queue + compute as
its trace reports them (Switchyard's own figures), measured through the gRPC `Classify` call on
a real `switchyard up` (the registry router, warm, placed where the scheduler puts it), at
concurrency 1 and 16 with prompts never seen before. Beside it, in the same run, the router
model called directly (OpenVINO, CPU, f32, LATENCY hint, one prompt per call; at c=16 the same
16 prompts as one batch, the best a batcher could do). Then the pipeline with a prompt seen
before: the controller remembers the tier per prompt and router, so classify costs nothing
(the trace says backend "cache").

Goal (issue 36): p50 < 3 ms and p99 < 6 ms at c=1 and c=16.

  python3 scripts/bench_classify.py [--requests 200] [--bin target/release/switchyard]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from bench_api import Child, cache_dir, child_env, find_binary, post_json, wait_http  # noqa: E402


def stubs(out: Path):
    import grpc_tools
    from grpc_tools import protoc

    root = REPO / "proto"
    files = sorted(str(p.relative_to(root)) for p in (root / "switchyard/v1").glob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    if protoc.main(["protoc", f"-I{root}", f"-I{well_known}", f"--python_out={out}", f"--grpc_python_out={out}", *files]):
        raise SystemExit("protoc failed")
    sys.path.insert(0, str(out))
    return importlib.import_module("switchyard.v1.inference_pb2"), importlib.import_module("switchyard.v1.inference_pb2_grpc")


def prompts(n: int, tag: str) -> list[str]:
    topics = ["sort a list in python", "the capital of France", "explain quantum entanglement in depth",
              "hi there", "write a bash loop", "summarise the French revolution"]
    return [f"{topics[i % len(topics)]} ({tag} {i})" for i in range(n)]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def through_switchyard(stub, pb, texts: list[str], concurrency: int) -> list[float]:
    def one(text: str) -> float:
        r = stub.Classify(pb.ClassifyRequest(model="router", inputs=[text]), timeout=30)
        return r.trace.queue_ms + r.trace.compute_ms

    with cf.ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, texts))


def direct(texts: list[str], concurrency: int) -> list[float]:
    import numpy as np
    from baseline_ort import tokenizer
    from prepare_models import openvino_compile

    model = cache_dir() / "models/router"
    compiled, _ = openvino_compile(model / "model.onnx", "CPU", "f32")
    request = compiled.create_infer_request()
    tok = tokenizer(model / "tokenizer.json")
    tok.enable_padding()

    def call(batch: list[str]) -> float:
        enc = tok.encode_batch(batch)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64)}
        if any(i.get_any_name() == "token_type_ids" for i in compiled.inputs):
            feeds["token_type_ids"] = np.zeros_like(ids)
        t = time.perf_counter()
        request.infer(feeds)
        return (time.perf_counter() - t) * 1e3

    call(texts[:1])
    if concurrency == 1:
        return [call([t]) for t in texts]
    return [call(texts[i:i + concurrency]) for i in range(0, len(texts), concurrency)]


def cached_pipeline(url: str, n: int) -> list[tuple[float, str]]:
    body = {"prompt": "write a bash loop over files", "max_tokens": 1}
    out = []
    for _ in range(n):
        status, resp, _ = post_json(url + "/v1/pipeline", body)
        assert status == 200, resp
        c = next(t for t in resp["trace"] if t["stage"] == "classify")
        out.append((c.get("queue_ms", 0) + c.get("compute_ms", 0), c.get("backend", "")))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--bin")
    args = ap.parse_args()
    import grpc

    binary = find_binary(args.bin)
    with tempfile.TemporaryDirectory(prefix="switchyard-bench-classify-") as tmp:
        (Path(tmp) / "pb").mkdir()
        pb, pb_grpc = stubs(Path(tmp) / "pb")
        up = Child([str(binary), "up", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
                    "--agent-listen", "127.0.0.1:0", "--data-dir", f"{tmp}/data"], child_env(), Path(tmp) / "up.log")
        try:
            fields = dict(w.split("=", 1) for w in up.first_line(120).split() if "=" in w)
            url = "http://" + fields["http"]
            wait_http(url + "/ready", 120)
            stub = pb_grpc.InferenceStub(grpc.insecure_channel(fields["grpc"]))
            through_switchyard(stub, pb, prompts(20, "warm"), 1)
            rows = []
            for c in (1, 16):
                sy = through_switchyard(stub, pb, prompts(args.requests, f"c{c}"), c)
                dr = direct(prompts(args.requests, f"d{c}"), c)
                rows.append((c, sy, dr))
            cached = cached_pipeline(url, 20)
        finally:
            up.close()
    print(f"\nclassify decision (queue + compute), registry router, {args.requests} new prompts per row\n")
    print(f"{'':4} {'switchyard p50':>15} {'p99':>8} {'direct p50':>11} {'p99':>8}  goal p50 < 3, p99 < 6 ms")
    for c, sy, dr in rows:
        met = "MET" if pct(sy, 0.5) < 3 and pct(sy, 0.99) < 6 else "NOT MET"
        print(f"c={c:<2} {pct(sy, 0.5):13.2f}ms {pct(sy, 0.99):6.2f}ms {pct(dr, 0.5):9.2f}ms {pct(dr, 0.99):6.2f}ms  {met}"
              + ("  (direct: one batch of 16)" if c > 1 else ""))
    hits = [ms for ms, backend in cached[1:] if backend == "cache"]
    print(f"\nrepeated prompt through /v1/pipeline: {len(hits)}/{len(cached) - 1} answered from the tier cache, "
          f"classify {statistics.median(hits) if hits else float('nan'):.2f} ms p50")
    return 0


if __name__ == "__main__":
    sys.exit(main())
