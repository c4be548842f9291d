#!/usr/bin/env python3
"""Tests of the prepared models (run after scripts/setup.sh, with the venv python):

    source ~/.cache/switchyard/env.sh && $SWITCHYARD_PYTHON scripts/test_models.py -v

They load the real files from SWITCHYARD_MODELS_DIR and check behaviour, not bytes: pooling
and padding invariance, router semantics and held-out accuracy, the generator's KV-cache
path against a full forward pass, left-padded batches, tokenizer special tokens, the probe
and calibration graphs on onnxruntime and OpenVINO, and check_registry's verdicts.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

import check_registry  # noqa: E402
import convert_gguf_to_onnx as conv  # noqa: E402
import prepare_models as prep  # noqa: E402

MODELS = Path(os.environ.get("SWITCHYARD_MODELS_DIR") or prep.cache_dir() / "models")


def need(path: Path) -> Path:
    if not path.is_file():
        raise AssertionError(f"{path} is missing: run scripts/setup.sh first")
    return path


def ort_session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(str(need(path)), opts, providers=["CPUExecutionProvider"])


def tokenizer(path: Path):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(need(path)))


class MiniLmTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sess = ort_session(MODELS / "minilm-l6-v2" / "model.onnx")
        cls.tok = tokenizer(MODELS / "minilm-l6-v2" / "tokenizer.json")

    def test_tokenizer_has_no_fixed_padding(self):
        self.assertEqual(len(self.tok.encode("hello world").ids), 4)  # [CLS] hello world [SEP]

    def test_related_sentences_are_closer_than_unrelated(self):
        e = prep.embed(self.sess, self.tok, ["A man is eating food.", "A man is eating a piece of bread.",
                                             "The stock market fell sharply today."])
        np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
        self.assertGreater(e[0] @ e[1], 0.5)
        self.assertLess(e[0] @ e[2], 0.2)

    def test_padding_in_a_batch_does_not_change_an_embedding(self):
        short = "Short one."
        alone = prep.embed(self.sess, self.tok, [short])[0]
        batched = prep.embed(self.sess, self.tok, [short, "A much longer sentence that forces padding " * 3])[0]
        np.testing.assert_allclose(alone, batched, atol=1e-4)


class RouterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sess = ort_session(MODELS / "router" / "model.onnx")
        cls.tok = tokenizer(MODELS / "router" / "tokenizer.json")

    def classify(self, texts):
        return prep.run_router(self.sess, self.tok, texts)

    def test_output_is_a_distribution_over_three_labels(self):
        p = self.classify(["hi", "Prove Fermat's little theorem.", "SELECT * FROM t"])
        self.assertEqual(p.shape, (3, 3))
        np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
        self.assertTrue((p >= 0).all())

    def test_prime_function_prompt_is_code(self):
        p = self.classify(["Write a Python function that checks if a number is prime"])[0]
        self.assertEqual(prep.ROUTER_LABELS[int(p.argmax())], "code", p)

    def test_clear_examples_of_each_tier(self):
        p = self.classify(["Hello! How are you?", "How do I reverse a linked list in C?",
                           "Write a detailed essay analysing the causes of the Cold War."])
        self.assertEqual([prep.ROUTER_LABELS[i] for i in p.argmax(1)], ["fast", "code", "heavy"])

    def test_heldout_accuracy_is_at_least_90_percent(self):
        texts, labels = prep.load_prompts(prep.REPO / "models" / "router" / "heldout.jsonl")
        acc = float((self.classify(texts).argmax(1) == np.array(labels)).mean())
        self.assertGreaterEqual(acc, 0.9, f"held-out accuracy {acc:.3f}")

    def test_heldout_and_training_prompts_do_not_overlap(self):
        train, _ = prep.load_prompts(prep.REPO / "models" / "router" / "prompts.jsonl")
        held, _ = prep.load_prompts(prep.REPO / "models" / "router" / "heldout.jsonl")
        self.assertFalse(set(train) & set(held))
        for i, lab in enumerate(prep.ROUTER_LABELS):
            self.assertGreaterEqual(sum(1 for x in prep.load_prompts(prep.REPO / "models" / "router" / "prompts.jsonl")[1] if x == i), 40, lab)


class SmolLmTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sess = ort_session(MODELS / "smollm2-135m" / "model.onnx")
        cls.tok = tokenizer(MODELS / "smollm2-135m" / "tokenizer.json")
        cls.out_names = [o.name for o in cls.sess.get_outputs()]

    def empty_past(self, b=1):
        return {f"past_key_values.{i}.{k}": np.zeros((b, 3, 0, 64), np.float32) for i in range(30) for k in ("key", "value")}

    def run_model(self, ids, mask, pos, past):
        res = self.sess.run(self.out_names, {"input_ids": ids, "attention_mask": mask, "position_ids": pos, **past})
        out = dict(zip(self.out_names, res))
        nxt = {n.replace("present.", "past_key_values."): a for n, a in out.items() if n.startswith("present.")}
        return out["logits"], nxt

    def test_io_names_follow_the_optimum_convention(self):
        names = [i.name for i in self.sess.get_inputs()]
        self.assertEqual(names[:3], ["input_ids", "attention_mask", "position_ids"])
        self.assertIn("past_key_values.29.value", names)
        self.assertEqual(self.out_names[0], "logits")
        self.assertIn("present.0.key", self.out_names)

    def test_special_tokens_are_single_ids(self):
        ids = self.tok.encode("<|im_start|>user\nhi<|im_end|><|endoftext|>").ids
        self.assertEqual(ids[0], 1)
        self.assertEqual(ids[-2:], [2, 0])
        self.assertEqual(self.tok.token_to_id("<|im_end|>"), 2)

    def test_decode_round_trips_unicode_and_digits(self):
        text = "Ünïcödé 12345 — ok\n\tdone"
        self.assertEqual(self.tok.decode(self.tok.encode(text).ids), text)

    def test_france_continues_with_paris(self):
        self.assertTrue(conv.greedy_continue(MODELS / "smollm2-135m" / "model.onnx",
                                             MODELS / "smollm2-135m" / "tokenizer.json",
                                             "The capital of France is", 2).startswith(" Paris"))

    def test_kv_cache_step_matches_full_forward(self):
        ids = self.tok.encode("One, two, three, four").ids
        n = len(ids)
        full, _ = self.run_model(np.array([ids], np.int64), np.ones((1, n), np.int64),
                                 np.arange(n, dtype=np.int64)[None], self.empty_past())
        _, past = self.run_model(np.array([ids[:-1]], np.int64), np.ones((1, n - 1), np.int64),
                                 np.arange(n - 1, dtype=np.int64)[None], self.empty_past())
        self.assertEqual(past["past_key_values.0.key"].shape, (1, 3, n - 1, 64))
        step, present = self.run_model(np.array([ids[-1:]], np.int64), np.ones((1, n), np.int64),
                                       np.array([[n - 1]], np.int64), past)
        self.assertEqual(present["past_key_values.29.value"].shape, (1, 3, n, 64))
        np.testing.assert_allclose(step[0, -1], full[0, -1], atol=2e-3, rtol=1e-3)

    def test_left_padded_batch_matches_single_rows(self):
        a = self.tok.encode("The capital of France is").ids
        b = self.tok.encode("Hello").ids
        L = max(len(a), len(b))
        ids = np.full((2, L), 2, np.int64)
        mask = np.zeros((2, L), np.int64)
        for r, x in enumerate((a, b)):
            ids[r, L - len(x):] = x
            mask[r, L - len(x):] = 1
        pos = np.clip(np.cumsum(mask, 1) - 1, 0, None)
        batched, _ = self.run_model(ids, mask, pos, self.empty_past(2))
        for r, x in enumerate((a, b)):
            single, _ = self.run_model(np.array([x], np.int64), np.ones((1, len(x)), np.int64),
                                       np.arange(len(x), dtype=np.int64)[None], self.empty_past())
            np.testing.assert_allclose(batched[r, -1], single[0, -1], atol=2e-3, rtol=1e-3)


class SmallGraphsTest(unittest.TestCase):
    def test_probe_and_calibration_graphs_run_on_both_runtimes(self):
        feeds = prep.small_model_feeds()
        for rel, feed in feeds.items():
            res = prep.check_runtimes(need(MODELS / rel), feed, prep.reference(rel, feed))
            self.assertEqual(res, {"onnxruntime": "ok", "openvino": "ok"}, rel)

    def test_openvino_reads_back_the_precision_it_was_asked_for(self):
        import openvino as ov

        path = need(MODELS / "calibrate" / "matmul_f32.onnx")
        compiled, ran = prep.openvino_compile(path, "CPU", "f32")
        self.assertEqual(ran, "f32")
        self.assertEqual(compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name(), "f32")
        # bf16: native with AVX512_BF16/AMX ("BF16" among the capabilities), emulated by the
        # plugin on other AVX-512 CPUs, refused without AVX-512. A grant must really compute
        # at bf16 (its numbers miss the exact product by bf16's rounding, ~1e-3; f32 ~1e-7).
        caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        try:
            compiled, ran = prep.openvino_compile(path, "CPU", "bf16")
        except RuntimeError as e:
            self.assertNotIn("BF16", caps, f"bf16 refused on a CPU with BF16: {e}")
            self.assertRegex(str(e), "asked for bf16")
            return
        self.assertEqual(ran, "bf16")
        import numpy as np

        n = 64
        a = ((np.arange(n * n) * 7919 % 1000) / 997.0 - 0.5).astype(np.float32).reshape(n, n)
        b = ((np.arange(n * n) * 104729 % 1000) / 991.0 - 0.5).astype(np.float32).reshape(n, n)
        out = next(iter(compiled.create_infer_request().infer({"A": a, "B": b}).values()))
        want = a.astype(np.float64) @ b.astype(np.float64)
        err = float(np.max(np.abs(out - want) / np.maximum(np.abs(want), 1.0)))
        self.assertGreater(err, 1e-4, "granted bf16 but computed f32 numbers")

    def test_calibration_matmul_has_dynamic_size(self):
        sess = ort_session(MODELS / "calibrate" / "matmul_f32.onnx")
        for n in (8, 33):
            a = np.ones((n, n), np.float32)
            self.assertEqual(float(sess.run(None, {"A": a, "B": a})[0][0, 0]), float(n))


class ConverterTest(unittest.TestCase):
    def test_unpermute_inverts_llama_cpp_permute(self):
        def llama_cpp_permute(w, n_head):  # convert_hf_to_gguf.py LlamaModel.permute
            return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

        w = np.random.default_rng(0).standard_normal((192, 16)).astype(np.float32)
        np.testing.assert_array_equal(conv.unpermute_rope_rows(llama_cpp_permute(w, 3), 3), w)

    def test_missing_gguf_is_a_conversion_error(self):
        with self.assertRaises(conv.ConversionError):
            conv.GgufModel(Path("/nonexistent/model.gguf"))

    def test_garbage_gguf_is_a_conversion_error(self):
        with tempfile.NamedTemporaryFile(suffix=".gguf") as f:
            f.write(b"not a gguf file at all" * 10)
            f.flush()
            with self.assertRaises(conv.ConversionError):
                conv.GgufModel(Path(f.name))


class RegistryCheckTest(unittest.TestCase):
    def test_committed_registry_matches_prepared_models(self):
        self.assertEqual(check_registry.main(["--models-dir", str(MODELS), "--quiet"]), 0)

    def test_missing_file_and_bad_fields_are_reported(self):
        with tempfile.TemporaryDirectory() as d:
            reg = Path(d) / "r.toml"
            reg.write_text('[[model]]\nname = "x"\nstage = "classify"\nonnx = "nope.onnx"\n'
                           'tokenizer = "nope.json"\nmemory_bytes = 1\nmax_input_tokens = 8\n')
            self.assertEqual(check_registry.main(["--registry", str(reg), "--models-dir", d, "--quiet"]), 1)
            self.assertIn("at least two labels", "\n".join(check_registry.check_fields(
                {"name": "x", "stage": "classify", "onnx": "a", "tokenizer": "b", "memory_bytes": 1,
                 "max_input_tokens": 8})))

    def test_wrong_sha256_is_reported(self):
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "m.onnx").write_bytes(b"x")
            (Path(d) / "t.json").write_text(json.dumps({}))
            reg = Path(d) / "r.toml"
            reg.write_text('[[model]]\nname = "x"\nstage = "embed"\nonnx = "m.onnx"\ntokenizer = "t.json"\n'
                           f'sha256 = "{"0" * 64}"\nmemory_bytes = 1\nmax_input_tokens = 8\n')
            self.assertEqual(check_registry.main(["--registry", str(reg), "--models-dir", d, "--quiet"]), 1)


if __name__ == "__main__":
    unittest.main()
