#!/usr/bin/env python3
"""Part of scripts/gpu-check.sh: ORT CUDA embeddings through Switchyard (placed on the GPU,
backend ort-cuda) against direct ORT CUDA with the same model, batch 32, same run.

  python3 scripts/gpu_check_embeddings.py SWITCHYARD_BIN OUT_DIR
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_ort import short_sentences, tokenizer  # noqa: E402
from bench_api import Child, cache_dir, child_env, post_json, wait_http  # noqa: E402


def direct_rate(sentences: list[str], model: Path) -> float:
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model / "model.onnx"), providers=["CUDAExecutionProvider"])
    if sess.get_providers()[0] != "CUDAExecutionProvider":
        raise SystemExit(f"ORT did not take the CUDA provider: {sess.get_providers()}")
    tok = tokenizer(model / "tokenizer.json")

    def once() -> None:
        for i in range(0, len(sentences), 32):
            enc = tok.encode_batch(sentences[i:i + 32])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})

    once()
    t = time.perf_counter()
    for _ in range(3):
        once()
    return 3 * len(sentences) / (time.perf_counter() - t)


def switchyard_rate(binary: str, sentences: list[str]) -> tuple[float, tuple]:
    with tempfile.TemporaryDirectory() as tmp:
        up = Child([binary, "up", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
                    "--agent-listen", "127.0.0.1:0", "--data-dir", f"{tmp}/data"], child_env(), Path(tmp) / "up.log")
        try:
            fields = dict(w.split("=", 1) for w in up.first_line(120).split() if "=" in w)
            url = "http://" + fields["http"]
            wait_http(url + "/ready", 120)
            body = {"model": "minilm-l6-v2", "input": sentences[:32]}
            status, _, headers = post_json(url + "/v1/embeddings", body)
            for _ in range(20):
                if status == 200:
                    break
                time.sleep(1)
                status, _, headers = post_json(url + "/v1/embeddings", body)
            placed = (headers.get("x-switchyard-device"), headers.get("x-switchyard-backend"))
            t = time.perf_counter()
            for _ in range(3):
                for i in range(0, len(sentences), 32):
                    post_json(url + "/v1/embeddings", {"model": "minilm-l6-v2", "input": sentences[i:i + 32]})
            return 3 * len(sentences) / (time.perf_counter() - t), placed
        finally:
            up.close()


def main() -> int:
    binary, out = sys.argv[1], Path(sys.argv[2])
    sentences = short_sentences(256)
    d = direct_rate(sentences, cache_dir() / "models/minilm-l6-v2")
    s, placed = switchyard_rate(binary, sentences)
    print(f"embeddings_direct_ort_cuda {d:.0f}/s")
    print(f"embeddings_switchyard {s:.0f}/s placed on {placed}")
    print(f"embeddings_ratio {s / d:.2f}x")
    (out / "embeddings.json").write_text(json.dumps({"direct": d, "switchyard": s, "placed": placed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
