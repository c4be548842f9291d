#!/usr/bin/env python3
"""Check models/registry.toml against the prepared models directory.

For every entry: the ONNX and tokenizer files exist under the models directory, the ONNX
file matches `sha256` when the entry records one, and the basic fields are consistent (the
same rules as backends/core/src/registry.rs). With --deep, also opens each ONNX graph and
checks its inputs/outputs fit the stage (embed: last_hidden_state, classify: probabilities
with one column per label, generate: logits + KV cache) and that each tokenizer loads.

Exit status 0 when everything matches, 1 otherwise (each problem printed on its own line).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

REPO = Path(__file__).resolve().parent.parent
KNOWN_KEYS = {
    "name", "stage", "onnx", "tokenizer", "sha256", "memory_bytes", "max_input_tokens",
    "overflow", "labels", "embedding_dim", "tier", "context_tokens", "chat_template",
    "system_prompt", "stop_tokens", "max_batch", "streams", "info", "precision", "also_at",
}


def default_models_dir() -> Path:
    env = os.environ.get("SWITCHYARD_MODELS_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "switchyard" / "models"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_fields(m: dict) -> list[str]:
    name = m.get("name") or "<unnamed>"
    errs = []
    unknown = set(m) - KNOWN_KEYS
    if unknown:
        errs.append(f"{name}: unknown keys {sorted(unknown)}")
    for key in ("name", "stage", "onnx", "tokenizer", "memory_bytes", "max_input_tokens"):
        if key not in m:
            errs.append(f"{name}: missing {key}")
    stage = m.get("stage")
    if stage not in ("classify", "embed", "generate"):
        errs.append(f"{name}: stage {stage!r} is not classify/embed/generate")
    for key in ("memory_bytes", "max_input_tokens", "max_batch", "streams"):
        if key in m and (not isinstance(m[key], int) or m[key] <= 0):
            errs.append(f"{name}: {key} must be a positive integer")
    if m.get("overflow", "truncate") not in ("truncate", "refuse"):
        errs.append(f"{name}: overflow must be truncate or refuse")
    if stage == "classify" and len(m.get("labels", [])) < 2:
        errs.append(f"{name}: a classify model needs at least two labels")
    if stage == "generate":
        if "context_tokens" not in m:
            errs.append(f"{name}: a generate model needs context_tokens")
        elif m.get("max_input_tokens", 0) >= m["context_tokens"]:
            errs.append(f"{name}: max_input_tokens must leave room in context_tokens")
        if m.get("tier") not in ("fast", "code", "heavy"):
            errs.append(f"{name}: tier must be fast, code or heavy")
    if "sha256" in m and (len(m["sha256"]) != 64 or any(c not in "0123456789abcdef" for c in m["sha256"])):
        errs.append(f"{name}: sha256 must be 64 lowercase hex digits")
    return errs


def deep_check(m: dict, onnx_path: Path, tok_path: Path) -> list[str]:
    import onnx
    from tokenizers import Tokenizer

    name = m["name"]
    errs = []
    try:
        Tokenizer.from_file(str(tok_path))
    except Exception as e:
        errs.append(f"{name}: tokenizer {tok_path} does not load: {e}")
    try:
        g = onnx.load(str(onnx_path), load_external_data=False).graph
    except Exception as e:
        return errs + [f"{name}: {onnx_path} is not a readable ONNX model: {e}"]
    inputs = {i.name for i in g.input}
    outputs = {o.name: o for o in g.output}
    need_in = {"input_ids", "attention_mask"}
    if not need_in <= inputs:
        errs.append(f"{name}: inputs {sorted(inputs)[:6]} lack {sorted(need_in - inputs)}")
    stage = m["stage"]
    if stage == "embed" and "last_hidden_state" not in outputs:
        errs.append(f"{name}: an embed model needs a last_hidden_state output")
    if stage == "classify":
        o = outputs.get("probabilities")
        if o is None:
            errs.append(f"{name}: a classify model needs a probabilities output")
        else:
            width = o.type.tensor_type.shape.dim[-1].dim_value
            if width != len(m["labels"]):
                errs.append(f"{name}: probabilities has {width} columns, registry has {len(m['labels'])} labels")
    if stage == "generate":
        if "logits" not in outputs or "position_ids" not in inputs:
            errs.append(f"{name}: a generate model needs position_ids input and logits output")
        if not any(n.startswith("past_key_values.") for n in inputs):
            errs.append(f"{name}: a generate model needs past_key_values.* inputs")
    return errs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registry", type=Path, default=REPO / "models" / "registry.toml")
    ap.add_argument("--models-dir", type=Path, default=None)
    ap.add_argument("--deep", action="store_true", help="also open graphs and tokenizers")
    ap.add_argument("--quiet", action="store_true", help="print only problems")
    args = ap.parse_args(argv)
    models_dir = args.models_dir or default_models_dir()

    try:
        reg = tomllib.loads(args.registry.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        print(f"error: cannot read {args.registry}: {e}", file=sys.stderr)
        return 1
    entries = reg.get("model", [])
    errs: list[str] = []
    if set(reg) - {"model"}:
        errs.append(f"unknown top-level keys {sorted(set(reg) - {'model'})}")
    if not entries:
        errs.append("no [[model]] entries")
    seen = set()
    hashes: dict[Path, str] = {}
    for m in entries:
        errs += check_fields(m)
        name = m.get("name", "<unnamed>")
        if name in seen:
            errs.append(f"{name}: registered twice")
        seen.add(name)
        if "onnx" not in m or "tokenizer" not in m:
            continue
        onnx_path = models_dir / m["onnx"]
        tok_path = models_dir / m["tokenizer"]
        missing = [str(p) for p in (onnx_path, tok_path) if not p.is_file()]
        if missing:
            errs.append(f"{name}: missing {', '.join(missing)} (run scripts/setup.sh)")
            continue
        if "sha256" in m:
            if onnx_path not in hashes:
                hashes[onnx_path] = sha256_file(onnx_path)
            if hashes[onnx_path] != m["sha256"]:
                errs.append(f"{name}: {onnx_path} has sha256 {hashes[onnx_path]}, registry says {m['sha256']}")
        if args.deep:
            errs += deep_check(m, onnx_path, tok_path)
        if not args.quiet and not errs:
            print(f"ok  {name:<20} {m['stage']:<9} {onnx_path}")
    for e in errs:
        print(f"registry: {e}", file=sys.stderr)
    if not args.quiet and not errs:
        print(f"{len(entries)} models, all files present under {models_dir}")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
