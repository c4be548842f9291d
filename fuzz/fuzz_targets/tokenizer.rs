//! Tokenizer inputs: the embedding model's `TextEncoder` (tokenise, truncate or refuse,
//! pad) on arbitrary text split at NUL into a batch, the streaming `IncrementalDecoder` of
//! the generation model on arbitrary token ids, and `stop_holdback` on arbitrary text and
//! stop strings. The tokenizers are the real prepared ones (`scripts/setup.sh`), found
//! through `models/registry.toml`. Invariants: no panic; a batch is rectangular with masks
//! that match the lengths; a hold-back ends on a character boundary.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use switchyard_backend_core::ModelRegistry;
use switchyard_backend_core::stage::StageKind as Stage;
use switchyard_backend_core::text::{
    IncrementalDecoder, TextEncoder, load_tokenizer, stop_holdback,
};

struct Tokenizers {
    embed: TextEncoder,
    generate: tokenizers::Tokenizer,
}

fn tokenizers() -> &'static Tokenizers {
    static T: OnceLock<Tokenizers> = OnceLock::new();
    T.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let models_dir = switchyard_backend_core::paths::models_dir();
        let registry = ModelRegistry::load(&root.join("models/registry.toml"), &models_dir)
            .expect("models/registry.toml loads (run scripts/setup.sh first)");
        let pick = |stage: Stage| {
            registry
                .iter()
                .find(|s| s.stage == stage && s.tokenizer.exists())
                .unwrap_or_else(|| {
                    panic!("no prepared {stage:?} model in {}", models_dir.display())
                })
        };
        let generation = pick(Stage::Generate);
        Tokenizers {
            embed: TextEncoder::new(pick(Stage::Embed)).expect("embedding tokenizer"),
            generate: load_tokenizer(&generation.name, &generation.tokenizer)
                .expect("generation tokenizer"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let t = tokenizers();
    let text = String::from_utf8_lossy(data);
    let texts: Vec<String> = text.split('\0').map(str::to_string).collect();
    if let Ok(batch) = t.embed.encode(&texts) {
        assert_eq!(batch.input_ids.len(), batch.batch * batch.seq);
        assert_eq!(batch.attention_mask.len(), batch.batch * batch.seq);
        for (r, &len) in batch.lengths.iter().enumerate() {
            let row = &batch.attention_mask[r * batch.seq..(r + 1) * batch.seq];
            assert_eq!(row.iter().sum::<i64>(), i64::from(len));
        }
    }
    let vocab = t.generate.get_vocab_size(true) as u32;
    let ids: Vec<u32> = data
        .chunks_exact(2)
        .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])) % vocab.max(1))
        .collect();
    let mut decoder = IncrementalDecoder::default();
    for n in 1..=ids.len().min(64) {
        let _ = decoder.next(&t.generate, &ids[..n]);
    }
    let stops: Vec<String> = texts.iter().skip(1).take(4).cloned().collect();
    let hold = stop_holdback(&texts[0], &stops);
    assert!(hold <= texts[0].len());
    assert!(texts[0].is_char_boundary(texts[0].len() - hold));
});
