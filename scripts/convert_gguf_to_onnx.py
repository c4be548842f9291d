#!/usr/bin/env python3
"""Convert a Llama-architecture GGUF file (SmolLM2-135M-Instruct) to a standard-op ONNX decoder.

Only numpy, onnx and the `gguf` package are used. The graph follows the optimum /
transformers.js I/O convention:

  inputs   input_ids            int64   [batch, seq]
           attention_mask       int64   [batch, past + seq]
           position_ids         int64   [batch, seq]
           past_key_values.{i}.key / .value   float32 [batch, kv_heads, past, head_dim]
  outputs  logits               float32 [batch, seq, vocab]
           present.{i}.key / .value           float32 [batch, kv_heads, past + seq, head_dim]

Weights are dequantised to float32, stored as float16 initializers and Cast to float32 in
the graph (runtimes constant-fold the Cast at load); all arithmetic is float32.

llama.cpp's converter permutes the rows of the Q and K projections so that rotary embedding
works on interleaved pairs; this converter undoes the permutation and applies the
Hugging Face "rotate half" form, so the KV cache has the same layout as the original model.

Also writes a HuggingFace `tokenizer.json` (byte-level BPE) rebuilt from the GGUF metadata.

Usage:  convert_gguf_to_onnx.py MODEL.gguf OUT_DIR [--no-validate]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

ProgressFn = Callable[[int, int], None]

OPSET = 17


class ConversionError(Exception):
    """The GGUF file is not something this converter understands, or validation failed."""


# --------------------------------------------------------------------------- GGUF reading


class GgufModel:
    """Hyper-parameters, tokenizer metadata and tensors of a Llama GGUF file."""

    def __init__(self, path: Path):
        import gguf

        if not path.is_file():
            raise ConversionError(f"GGUF file not found: {path}")
        try:
            self.reader = gguf.GGUFReader(str(path))
        except Exception as e:  # gguf raises ValueError / struct errors on bad files
            raise ConversionError(f"cannot read GGUF file {path}: {e}") from e
        self._gguf = gguf
        arch = self.field("general.architecture")
        if arch != "llama":
            raise ConversionError(f"{path}: architecture {arch!r} is not supported (need 'llama')")
        p = "llama."
        self.n_layers = int(self.field(p + "block_count"))
        self.hidden = int(self.field(p + "embedding_length"))
        self.ffn = int(self.field(p + "feed_forward_length"))
        self.n_heads = int(self.field(p + "attention.head_count"))
        self.n_kv_heads = int(self.field(p + "attention.head_count_kv"))
        self.rope_theta = float(self.field(p + "rope.freq_base", 10000.0))
        self.rms_eps = float(self.field(p + "attention.layer_norm_rms_epsilon"))
        self.head_dim = self.hidden // self.n_heads
        self.context_length = int(self.field(p + "context_length", 2048))
        self.tensors = {t.name: t for t in self.reader.tensors}
        self.vocab = int(self.tensors["token_embd.weight"].shape[-1])
        if self.hidden % self.n_heads or self.n_heads % self.n_kv_heads:
            raise ConversionError(
                f"{path}: inconsistent heads (hidden {self.hidden}, heads {self.n_heads}, "
                f"kv heads {self.n_kv_heads})"
            )

    def field(self, key: str, default=None):
        f = self.reader.fields.get(key)
        if f is None:
            if default is None:
                raise ConversionError(f"GGUF metadata key {key!r} is missing")
            return default
        return f.contents()

    def weight(self, name: str) -> np.ndarray:
        """Dequantised tensor as float32, in PyTorch layout ([out, in] for matrices)."""
        t = self.tensors.get(name)
        if t is None:
            raise ConversionError(f"GGUF tensor {name!r} is missing")
        w = self._gguf.quants.dequantize(t.data, t.tensor_type)
        return np.ascontiguousarray(w, dtype=np.float32)


def unpermute_rope_rows(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Inverse of llama.cpp's `permute(w, n_heads)` on Q/K projection rows ([out, in])."""
    out = w.shape[0]
    return (
        w.reshape(n_heads, out // n_heads // 2, 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


# --------------------------------------------------------------------------- graph builder


class GraphBuilder:
    """Tiny helper that names nodes/values deterministically."""

    def __init__(self):
        from onnx import helper

        self.h = helper
        self.nodes = []
        self.inits = []
        self.counter = 0

    def fresh(self, hint: str) -> str:
        self.counter += 1
        return f"{hint}_{self.counter}"

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, n_out: int = 1, **attrs):
        outs = [self.fresh(hint or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(
            self.h.make_node(op_type, inputs, outs, name=self.fresh("n_" + op_type), **attrs)
        )
        return outs[0] if n_out == 1 else outs

    def op_to(self, op_type: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(
            self.h.make_node(op_type, inputs, [output], name=self.fresh("n_" + op_type), **attrs)
        )
        return output

    def const(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def weight16(self, name: str, array: np.ndarray) -> str:
        """fp16 initializer + Cast to float32; returns the float32 value name."""
        from onnx import TensorProto

        self.const(name + ".fp16", array.astype(np.float16))
        return self.op_to("Cast", [name + ".fp16"], name, to=TensorProto.FLOAT)

    def i64(self, name: str, values) -> str:
        return self.const(name, np.asarray(values, dtype=np.int64))

    def f32(self, name: str, values) -> str:
        return self.const(name, np.asarray(values, dtype=np.float32))


def build_graph(m: GgufModel, progress: ProgressFn | None = None):
    """Builds the ONNX ModelProto for `m`."""
    import onnx
    from onnx import TensorProto

    g = GraphBuilder()
    H, NH, NKV, HD = m.hidden, m.n_heads, m.n_kv_heads, m.head_dim
    REP = NH // NKV
    steps = m.n_layers + 2
    done = 0

    def tick():
        nonlocal done
        done += 1
        if progress:
            progress(done, steps)

    # Shared constants.
    g.f32("c_eps", [m.rms_eps])
    g.f32("c_two", [2.0])
    g.f32("c_scale", [1.0 / np.sqrt(HD)])
    g.f32("c_zero", [0.0])
    g.f32("c_neg", [-1.0e9])
    g.i64("c_axis_last", [-1])
    g.i64("c_0", [0])
    g.i64("c_1", [1])
    g.i64("c_half", [HD // 2])
    g.i64("c_hd", [HD])
    g.i64("shape_q", [0, 0, NH, HD])  # [b, s, heads, hd]
    g.i64("shape_kv", [0, 0, NKV, HD])
    g.i64("shape_q5", [0, NKV, REP, -1, HD])  # [b, kv, rep, s, hd]
    g.i64("shape_ctx4", [0, NH, -1, HD])
    g.i64("shape_back", [0, 0, H])
    g.i64("shape_2d", [-1, H])
    g.i64("ax_1", [1])
    g.i64("ax_2", [2])
    g.i64("ax_12", [1, 2])
    inv_freq = 1.0 / (m.rope_theta ** (np.arange(0, HD, 2, dtype=np.float64) / HD))
    g.f32("inv_freq", inv_freq.astype(np.float32).reshape(1, 1, HD // 2))

    # Embedding table (also the tied LM head).
    emb = m.weight("token_embd.weight")  # [vocab, H]
    E = g.weight16("model.embed_tokens.weight", emb)
    x = g.op("Gather", [E, "input_ids"], "embeds", axis=0)  # [b, s, H]
    tick()

    # Rotary cos/sin from position_ids: [b, 1, s, HD].
    pos = g.op("Cast", ["position_ids"], "pos_f", to=TensorProto.FLOAT)
    pos = g.op("Unsqueeze", [pos, "c_axis_last"], "pos_u")  # [b, s, 1]
    freqs = g.op("Mul", [pos, "inv_freq"], "freqs")  # [b, s, HD/2]
    embp = g.op("Concat", [freqs, freqs], "rope_emb", axis=-1)
    cos = g.op("Unsqueeze", [g.op("Cos", [embp]), "ax_1"], "cos")
    sin = g.op("Unsqueeze", [g.op("Sin", [embp]), "ax_1"], "sin")

    # Additive mask [b, 1, 1, s, t]: key j visible to query i iff mask[b, j] and j <= past + i.
    ids_shape = g.op("Shape", ["input_ids"], "ids_shape")
    seq = g.op("Gather", [ids_shape, "c_1"], "seq_len", axis=0)  # [1]
    am_shape = g.op("Shape", ["attention_mask"], "am_shape")
    total = g.op("Gather", [am_shape, "c_1"], "total_len", axis=0)  # [1]
    past = g.op("Sub", [total, seq], "past_len")
    seq_s = g.op("Squeeze", [seq], "seq_s")
    total_s = g.op("Squeeze", [total], "total_s")
    past_s = g.op("Squeeze", [past], "past_s")
    c0s = g.i64("c_0s", 0)
    c1s = g.i64("c_1s", 1)
    q_idx = g.op("Range", [c0s, seq_s, c1s], "q_idx")
    q_idx = g.op("Add", [q_idx, past_s], "q_abs")
    q_idx = g.op("Unsqueeze", [q_idx, "c_axis_last"], "q_col")  # [s, 1]
    k_idx = g.op("Range", [c0s, total_s, c1s], "k_idx")  # [t]
    causal = g.op("LessOrEqual", [k_idx, q_idx], "causal")  # [s, t]
    am_b = g.op("Cast", ["attention_mask"], "am_bool", to=TensorProto.BOOL)  # [b, t]
    am_b = g.op("Unsqueeze", [am_b, "ax_12"], "am_b3")  # [b, 1, 1, t]
    visible = g.op("And", [causal, am_b], "visible")  # [b, 1, s, t]
    visible = g.op("Unsqueeze", [visible, "ax_1"], "visible5")  # [b, 1, 1, s, t]
    mask_add = g.op("Where", [visible, "c_zero", "c_neg"], "mask_add")

    def rms_norm(x: str, weight_name: str, w: np.ndarray) -> str:
        wn = g.f32(weight_name, w)
        sq = g.op("Pow", [x, "c_two"], "sq")
        var = g.op("ReduceMean", [sq], "var", axes=[-1], keepdims=1)
        var = g.op("Add", [var, "c_eps"], "var_eps")
        inv = g.op("Reciprocal", [g.op("Sqrt", [var], "std")], "inv_std")
        return g.op("Mul", [g.op("Mul", [x, inv], "normed"), wn], "rms")

    def linear(x: str, name: str, w_out_in: np.ndarray) -> str:
        wt = g.weight16(name, np.ascontiguousarray(w_out_in.T))  # [in, out]
        return g.op("MatMul", [x, wt], name.replace(".weight", "").replace(".", "_"))

    def rotate(x: str) -> str:
        x1 = g.op("Slice", [x, "c_0", "c_half", "c_axis_last"], "x1")
        x2 = g.op("Slice", [x, "c_half", "c_hd", "c_axis_last"], "x2")
        rh = g.op("Concat", [g.op("Neg", [x2], "neg_x2"), x1], "rot_half", axis=-1)
        return g.op("Add", [g.op("Mul", [x, cos]), g.op("Mul", [rh, sin])], "roped")

    inputs = [
        g.h.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
        g.h.make_tensor_value_info(
            "attention_mask", TensorProto.INT64, ["batch_size", "total_sequence_length"]
        ),
        g.h.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
    ]
    outputs = [
        g.h.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch_size", "sequence_length", m.vocab])
    ]

    for i in range(m.n_layers):
        b = f"blk.{i}."
        pre = f"model.layers.{i}."
        for kind in ("key", "value"):
            inputs.append(
                g.h.make_tensor_value_info(
                    f"past_key_values.{i}.{kind}",
                    TensorProto.FLOAT,
                    ["batch_size", NKV, "past_sequence_length", HD],
                )
            )
            outputs.append(
                g.h.make_tensor_value_info(
                    f"present.{i}.{kind}",
                    TensorProto.FLOAT,
                    ["batch_size", NKV, "total_sequence_length", HD],
                )
            )
        hn = rms_norm(x, pre + "input_layernorm.weight", m.weight(b + "attn_norm.weight"))
        wq = unpermute_rope_rows(m.weight(b + "attn_q.weight"), NH)
        wk = unpermute_rope_rows(m.weight(b + "attn_k.weight"), NKV)
        wv = m.weight(b + "attn_v.weight")
        q = linear(hn, pre + "self_attn.q_proj.weight", wq)
        k = linear(hn, pre + "self_attn.k_proj.weight", wk)
        v = linear(hn, pre + "self_attn.v_proj.weight", wv)
        q = g.op("Transpose", [g.op("Reshape", [q, "shape_q"])], "q_t", perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [k, "shape_kv"])], "k_t", perm=[0, 2, 1, 3])
        v = g.op("Transpose", [g.op("Reshape", [v, "shape_kv"])], "v_t", perm=[0, 2, 1, 3])
        q = rotate(q)  # [b, NH, s, HD]
        k = rotate(k)  # [b, NKV, s, HD]
        pk = g.op_to("Concat", [f"past_key_values.{i}.key", k], f"present.{i}.key", axis=2)
        pv = g.op_to("Concat", [f"past_key_values.{i}.value", v], f"present.{i}.value", axis=2)
        # Grouped-query attention by broadcasting: q [b, kv, rep, s, hd] x k [b, kv, 1, hd, t].
        q5 = g.op("Reshape", [q, "shape_q5"], "q5")
        k5 = g.op("Unsqueeze", [g.op("Transpose", [pk], "kT", perm=[0, 1, 3, 2]), "ax_2"], "k5")
        v5 = g.op("Unsqueeze", [pv, "ax_2"], "v5")
        scores = g.op("Mul", [g.op("MatMul", [q5, k5], "qk"), "c_scale"], "scores")
        scores = g.op("Add", [scores, mask_add], "scores_masked")
        probs = g.op("Softmax", [scores], "probs", axis=-1)
        ctx = g.op("MatMul", [probs, v5], "ctx")  # [b, kv, rep, s, hd]
        ctx = g.op("Reshape", [ctx, "shape_ctx4"], "ctx4")  # [b, NH, s, hd]
        ctx = g.op("Transpose", [ctx], "ctx_t", perm=[0, 2, 1, 3])  # [b, s, NH, HD]
        ctx = g.op("Reshape", [ctx, "shape_back"], "ctx_flat")
        attn = linear(ctx, pre + "self_attn.o_proj.weight", m.weight(b + "attn_output.weight"))
        x = g.op("Add", [x, attn], "resid_attn")

        hn = rms_norm(x, pre + "post_attention_layernorm.weight", m.weight(b + "ffn_norm.weight"))
        gate = linear(hn, pre + "mlp.gate_proj.weight", m.weight(b + "ffn_gate.weight"))
        up = linear(hn, pre + "mlp.up_proj.weight", m.weight(b + "ffn_up.weight"))
        act = g.op("Mul", [gate, g.op("Sigmoid", [gate], "sig")], "silu")
        down = linear(g.op("Mul", [act, up], "swiglu"), pre + "mlp.down_proj.weight", m.weight(b + "ffn_down.weight"))
        x = g.op("Add", [x, down], "resid_mlp")
        tick()

    x = rms_norm(x, "model.norm.weight", m.weight("output_norm.weight"))
    # Tied LM head: logits = x @ E^T, through Gemm(transB=1) on the flattened activations so
    # the embedding table is held once.
    x2 = g.op("Reshape", [x, "shape_2d"], "final_2d")
    logits2 = g.op("Gemm", [x2, E], "logits_2d", transB=1)
    out_shape = g.op(
        "Concat",
        [g.op("Slice", [g.op("Shape", [x], "x_shape"), "c_0", g.i64("c_2", [2]), "c_0"], "bs"), g.i64("c_vocab", [m.vocab])],
        "logits_shape",
        axis=0,
    )
    g.op_to("Reshape", [logits2, out_shape], "logits")
    tick()

    graph = g.h.make_graph(g.nodes, "smollm2_decoder", inputs, outputs, initializer=g.inits)
    model = g.h.make_model(
        graph,
        opset_imports=[g.h.make_opsetid("", OPSET)],
        producer_name="switchyard-convert-gguf",
        producer_version="1",
    )
    model.ir_version = 8
    return model


# --------------------------------------------------------------------------- tokenizer


def build_tokenizer_json(m: GgufModel) -> dict:
    """A HuggingFace tokenizers `tokenizer.json` (byte-level BPE) from GGUF metadata."""
    model_kind = m.field("tokenizer.ggml.model")
    if model_kind != "gpt2":
        raise ConversionError(f"tokenizer model {model_kind!r} is not supported (need 'gpt2' BPE)")
    tokens = list(m.field("tokenizer.ggml.tokens"))
    types = list(m.field("tokenizer.ggml.token_type"))
    merges = list(m.field("tokenizer.ggml.merges"))
    pre = m.field("tokenizer.ggml.pre", "default")
    # token_type 3 = CONTROL (special), 4 = USER_DEFINED.
    added = [
        {
            "id": i,
            "content": tok,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": types[i] == 3,
        }
        for i, tok in enumerate(tokens)
        if types[i] in (3, 4)
    ]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    if pre in ("smollm", "starcoder", "refact", "qwen2"):
        pre_tok = {
            "type": "Sequence",
            "pretokenizers": [{"type": "Digits", "individual_digits": True}, byte_level],
        }
    else:
        pre_tok = byte_level
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": pre_tok,
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {tok: i for i, tok in enumerate(tokens)},
            "merges": [mg.split(" ", 1) for mg in merges],
        },
    }


# --------------------------------------------------------------------------- validation


def greedy_continue(onnx_path: Path, tokenizer_path: Path, prompt: str, max_new: int = 8) -> str:
    """Greedy-decodes `max_new` tokens after `prompt` with onnxruntime; returns the text."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    n_layers = sum(1 for i in sess.get_inputs() if i.name.endswith(".key"))
    kv_heads, head_dim = sess.get_inputs()[3].shape[1], sess.get_inputs()[3].shape[3]
    ids = tok.encode(prompt, add_special_tokens=False).ids
    past = {
        f"past_key_values.{i}.{k}": np.zeros((1, kv_heads, 0, head_dim), np.float32)
        for i in range(n_layers)
        for k in ("key", "value")
    }
    out_names = [o.name for o in sess.get_outputs()]
    generated: list[int] = []
    cur = ids
    total = 0
    for _ in range(max_new):
        feed = {
            "input_ids": np.array([cur], np.int64),
            "attention_mask": np.ones((1, total + len(cur)), np.int64),
            "position_ids": np.arange(total, total + len(cur), dtype=np.int64)[None, :],
            **past,
        }
        res = dict(zip(out_names, sess.run(out_names, feed)))
        nxt = int(np.argmax(res["logits"][0, -1]))
        generated.append(nxt)
        total += len(cur)
        cur = [nxt]
        for i in range(n_layers):
            for k in ("key", "value"):
                past[f"past_key_values.{i}.{k}"] = res[f"present.{i}.{k}"]
    return tok.decode(generated)


# --------------------------------------------------------------------------- entry points


def convert(
    gguf_path: Path,
    out_dir: Path,
    progress: ProgressFn | None = None,
    validate: bool = True,
    log=print,
) -> dict:
    """Converts `gguf_path` into `out_dir/model.onnx` + `out_dir/tokenizer.json`.

    Returns facts about the conversion (seconds, sizes, validation continuation).
    Raises ConversionError on bad input or when validation fails.
    """
    import onnx

    t0 = time.time()
    m = GgufModel(gguf_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = build_graph(m, progress)
    onnx.checker.check_model(model)
    onnx_path = out_dir / "model.onnx"
    tmp = onnx_path.with_suffix(".onnx.tmp")
    onnx.save_model(model, str(tmp))
    tmp.replace(onnx_path)
    tok_path = out_dir / "tokenizer.json"
    tmp = tok_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(build_tokenizer_json(m), ensure_ascii=False))
    tmp.replace(tok_path)
    facts = {
        "seconds": round(time.time() - t0, 1),
        "onnx_bytes": onnx_path.stat().st_size,
        "layers": m.n_layers,
        "hidden": m.hidden,
        "heads": m.n_heads,
        "kv_heads": m.n_kv_heads,
        "head_dim": m.head_dim,
        "vocab": m.vocab,
        "rope_theta": m.rope_theta,
    }
    if validate:
        prompt = "The capital of France is"
        cont = greedy_continue(onnx_path, tok_path, prompt)
        log(f"  validation: {prompt!r} -> {cont!r}")
        facts["validation"] = cont
        if not cont.startswith(" Paris"):
            raise ConversionError(
                f"validation failed: greedy continuation of {prompt!r} is {cont!r}, expected ' Paris'"
            )
    return facts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gguf", type=Path)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--no-validate", action="store_true")
    args = ap.parse_args(argv)
    try:
        facts = convert(args.gguf, args.out_dir, validate=not args.no_validate)
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(facts, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
