#!/usr/bin/env python3
"""Direct onnxruntime baselines for Switchyard's benchmarks (same models, same machine).

  baseline_ort.py embed    --threads 2 [--batch 32] [--sentences 256] [--repeat 3]
                           [--runtime onnxruntime|openvino] [--precision f32]
      all-MiniLM-L6-v2, 256 short sentences in batches of 32, mean pooling + L2 norm.
      Prints `sentences_per_s <x>` (best of --repeat passes, after one warm-up pass) and
      `precision <p>`: onnxruntime runs the float32 graph at f32; OpenVINO is compiled with an
      explicit INFERENCE_PRECISION_HINT (default f32) and the value it reads back is printed.
      With `--latency N`: N single-sentence calls one at a time (tokenise, infer, pool), and
      `single_p50_ms` / `single_p99_ms`.

  baseline_ort.py generate --threads 2 [--max-tokens 64] [--prompt TEXT] [--chat]
      SmolLM2-135M greedy decoding with a direct KV-cache loop (prefill, then one token
      per call). Prints `tokens_per_s <x>` (generated tokens / wall time, prefill
      included), plus `prefill_ms` and `decode_tokens_per_s`.

Output lines are `key value` so benchmark binaries can parse them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

SUBJECTS = ["The cat", "A developer", "My neighbour", "The train", "Our team", "The weather",
            "This recipe", "The old library"]
VERBS = ["is waiting for", "talks about", "looks at", "depends on", "was built near",
         "forgot about", "really likes", "often ignores"]
OBJECTS = ["the river", "a new release", "the morning news", "a quiet park"]


def default_models_dir() -> Path:
    env = os.environ.get("SWITCHYARD_MODELS_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "switchyard" / "models"


def short_sentences(n: int) -> list[str]:
    """`n` distinct short English sentences (deterministic)."""
    out = [f"{s} {v} {o}." for s in SUBJECTS for v in VERBS for o in OBJECTS]
    while len(out) < n:
        out += [f"{t} ({len(out) + i})" for i, t in enumerate(out[: n - len(out)])]
    return out[:n]


def session(path: Path, threads: int):
    import onnxruntime as ort

    if not path.is_file():
        raise SystemExit(f"error: {path} not found (run scripts/setup.sh)")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def tokenizer(path: Path):
    from tokenizers import Tokenizer

    if not path.is_file():
        raise SystemExit(f"error: {path} not found (run scripts/setup.sh)")
    return Tokenizer.from_file(str(path))


def embed_runner(path: Path, runtime: str, threads: int, precision: str):
    """(run(feeds) -> last_hidden_state, precision it computes at) for one runtime."""
    if runtime == "onnxruntime":
        if precision != "f32":
            raise SystemExit("onnxruntime runs the float32 graph at f32 only")
        sess = session(path, threads)
        return (lambda feeds: sess.run(["last_hidden_state"], feeds)[0]), "f32"
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from prepare_models import openvino_compile

    compiled, ran = openvino_compile(path, "CPU", precision, threads)
    request = compiled.create_infer_request()
    out = compiled.output("last_hidden_state")
    return (lambda feeds: request.infer(feeds)[out]), ran


def bench_embed(args) -> None:
    d = args.models_dir / "minilm-l6-v2"
    if not (d / "model.onnx").is_file():
        raise SystemExit(f"error: {d / 'model.onnx'} not found (run scripts/setup.sh)")
    infer, ran = embed_runner(d / "model.onnx", args.runtime, args.threads, args.precision)
    tok = tokenizer(d / "tokenizer.json")
    tok.no_padding()
    tok.enable_truncation(128)
    sentences = short_sentences(args.sentences)

    def one_pass() -> np.ndarray:
        outs = []
        for i in range(0, len(sentences), args.batch):
            encs = tok.encode_batch(sentences[i : i + args.batch])
            L = max(len(e.ids) for e in encs)
            ids = np.zeros((len(encs), L), np.int64)
            mask = np.zeros_like(ids)
            for j, e in enumerate(encs):
                ids[j, : len(e.ids)] = e.ids
                mask[j, : len(e.ids)] = 1
            h = infer({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
            m = mask[:, :, None].astype(np.float32)
            mean = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
            outs.append(mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12))
        return np.concatenate(outs)

    if args.latency:
        # One sentence per call, one call at a time: the direct single-inference latency.
        def single(text: str) -> np.ndarray:
            ids = np.array([tok.encode(text).ids], np.int64)
            h = infer({"input_ids": ids, "attention_mask": np.ones_like(ids),
                       "token_type_ids": np.zeros_like(ids)})
            mean = h.mean(1)
            return mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)

        for text in sentences[:10]:  # warm-up
            single(text)
        times = []
        for i in range(args.latency):
            t0 = time.perf_counter()
            single(sentences[i % len(sentences)])
            times.append((time.perf_counter() - t0) * 1e3)
        times.sort()
        print(f"runtime {args.runtime}")
        print(f"precision {ran}")
        print(f"single_calls {len(times)}")
        print(f"single_p50_ms {times[len(times) // 2]:.3f}")
        print(f"single_p99_ms {times[min(len(times) - 1, int(len(times) * 0.99))]:.3f}")
        return

    one_pass()  # warm-up
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        vecs = one_pass()
        best = min(best, time.perf_counter() - t0)
    assert vecs.shape == (len(sentences), 384)
    print(f"runtime {args.runtime}")
    print(f"precision {ran}")
    print(f"sentences {len(sentences)}")
    print(f"batch {args.batch}")
    print(f"threads {args.threads}")
    print(f"seconds {best:.4f}")
    print(f"sentences_per_s {len(sentences) / best:.1f}")


def bench_generate(args) -> None:
    d = args.models_dir / "smollm2-135m"
    sess = session(d / "model.onnx", args.threads)
    tok = tokenizer(d / "tokenizer.json")
    inputs = sess.get_inputs()
    n_layers = sum(1 for i in inputs if i.name.startswith("past_key_values.") and i.name.endswith(".key"))
    kv_heads, head_dim = inputs[3].shape[1], inputs[3].shape[3]
    prompt = args.prompt
    if args.chat:
        prompt = (
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"
        )
    ids = tok.encode(prompt, add_special_tokens=False).ids
    eos = {tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")}
    out_names = [o.name for o in sess.get_outputs()]

    def run(max_new: int):
        past = {f"past_key_values.{i}.{k}": np.zeros((1, kv_heads, 0, head_dim), np.float32)
                for i in range(n_layers) for k in ("key", "value")}
        cur, total, gen = ids, 0, []
        t0 = time.perf_counter()
        prefill = 0.0
        for step in range(max_new):
            feed = {
                "input_ids": np.array([cur], np.int64),
                "attention_mask": np.ones((1, total + len(cur)), np.int64),
                "position_ids": np.arange(total, total + len(cur), dtype=np.int64)[None, :],
                **past,
            }
            res = sess.run(out_names, feed)
            logits = res[0]
            nxt = int(np.argmax(logits[0, -1]))
            if step == 0:
                prefill = time.perf_counter() - t0
            gen.append(nxt)
            total += len(cur)
            cur = [nxt]
            past = {name: arr for name, arr in zip(out_names[1:], res[1:])}
            past = {n.replace("present.", "past_key_values."): a for n, a in past.items()}
            if args.stop_at_eos and nxt in eos:
                break
        return gen, time.perf_counter() - t0, prefill

    run(2)  # warm-up
    gen, secs, prefill = run(args.max_tokens)
    text = tok.decode(gen)
    print(f"prompt_tokens {len(ids)}")
    print(f"generated_tokens {len(gen)}")
    print(f"threads {args.threads}")
    print(f"prefill_ms {prefill * 1000:.1f}")
    if len(gen) > 1:
        print(f"decode_tokens_per_s {(len(gen) - 1) / (secs - prefill):.1f}")
    print(f"tokens_per_s {len(gen) / secs:.1f}")
    print(f"text {text!r}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", type=Path, default=None)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("embed", help="embedding throughput")
    e.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = all cores)")
    e.add_argument("--batch", type=int, default=32)
    e.add_argument("--sentences", type=int, default=256)
    e.add_argument("--repeat", type=int, default=3)
    e.add_argument("--runtime", choices=["onnxruntime", "openvino"], default="onnxruntime")
    e.add_argument("--precision", choices=["f32", "f16", "bf16"], default="f32")
    e.add_argument("--latency", type=int, default=0,
                   help="instead: N single-sentence calls one at a time; print their p50/p99")
    g = sub.add_parser("generate", help="greedy generation speed")
    g.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = all cores)")
    g.add_argument("--max-tokens", type=int, default=64)
    g.add_argument("--prompt", default="Write a short story about a lighthouse keeper.")
    g.add_argument("--chat", action="store_true", help="wrap the prompt in the ChatML template")
    g.add_argument("--stop-at-eos", action="store_true", help="stop at <|im_end|>/<|endoftext|>")
    args = ap.parse_args(argv)
    args.models_dir = args.models_dir or default_models_dir()
    for name in ("batch", "sentences", "repeat", "max_tokens"):
        if getattr(args, name, 1) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.threads < 0:
        ap.error("--threads must be >= 0")
    if args.cmd == "embed":
        bench_embed(args)
    else:
        bench_generate(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
