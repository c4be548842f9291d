#!/usr/bin/env python3
"""Baseline embedding server: what users run today without Switchyard (issue-6 benchmark).

A minimal Python HTTP server (http.server.ThreadingHTTPServer) around onnxruntime with the
all-MiniLM-L6-v2 model: one inference per request (the request's inputs as one batch),
mean pooling + L2 normalisation, OpenAI-style API:

  POST /v1/embeddings  {"input": "text" | ["text", ...], "model": "minilm-l6-v2"}
       -> {"object": "list", "data": [{"object": "embedding", "embedding": [...], "index": 0}],
           "model": ..., "usage": {"prompt_tokens": n, "total_tokens": n}}
  GET  /v1/models, GET /health

  baseline_embed_server.py --port 0 --threads 2    # prints "PORT <n>" once listening
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

MODEL_NAME = "minilm-l6-v2"
MAX_TOKENS = 128
MAX_INPUTS = 2048


def default_models_dir() -> Path:
    env = os.environ.get("SWITCHYARD_MODELS_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "switchyard" / "models"


class Embedder:
    """MiniLM through onnxruntime: texts -> L2-normalised mean-pooled vectors."""

    def __init__(self, model_dir: Path, threads: int):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        onnx_path, tok_path = model_dir / "model.onnx", model_dir / "tokenizer.json"
        for p in (onnx_path, tok_path):
            if not p.is_file():
                raise SystemExit(f"error: {p} not found (run scripts/setup.sh)")
        self.tokenizer = Tokenizer.from_file(str(tok_path))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        encs = self.tokenizer.encode_batch(texts)
        L = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), L), np.int64)
        mask = np.zeros_like(ids)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        h = self.session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )[0]
        m = mask[:, :, None].astype(np.float32)
        mean = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        vecs = mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
        return vecs, int(mask.sum())


def make_handler(embedder: Embedder):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # quiet: benchmarks hammer this server
            pass

        def _send(self, status: int, body: dict):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, param: str | None = None):
            self._send(
                status,
                {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}},
            )

        def do_GET(self):
            if self.path == "/health":
                self._send(200, {"status": "ok"})
            elif self.path == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": MODEL_NAME, "object": "model", "owned_by": "baseline"}]})
            else:
                self._error(404, f"no route GET {self.path}")

        def do_POST(self):
            if self.path != "/v1/embeddings":
                self._error(404, f"no route POST {self.path}")
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
            except (ValueError, json.JSONDecodeError) as e:
                self._error(400, f"invalid JSON body: {e}")
                return
            if not isinstance(body, dict) or "input" not in body:
                self._error(400, "body must be an object with an 'input' field", "input")
                return
            inp = body["input"]
            texts = [inp] if isinstance(inp, str) else inp
            if (
                not isinstance(texts, list)
                or not texts
                or len(texts) > MAX_INPUTS
                or not all(isinstance(t, str) for t in texts)
            ):
                self._error(400, f"'input' must be a string or a non-empty array of at most {MAX_INPUTS} strings", "input")
                return
            model = body.get("model", MODEL_NAME)
            if model != MODEL_NAME:
                self._error(404, f"model {model!r} not found (this server has {MODEL_NAME!r})", "model")
                return
            vecs, tokens = embedder.embed(texts)
            self._send(
                200,
                {
                    "object": "list",
                    "data": [
                        {"object": "embedding", "embedding": v.tolist(), "index": i} for i, v in enumerate(vecs)
                    ],
                    "model": MODEL_NAME,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                },
            )

    return Handler


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8090, help="0 = any free port (printed as 'PORT <n>')")
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0 = all cores)")
    ap.add_argument("--models-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    model_dir = (args.models_dir or default_models_dir()) / MODEL_NAME
    embedder = Embedder(model_dir, args.threads)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(embedder))
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
