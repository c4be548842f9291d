//! ONNX Runtime vs OpenVINO on the same models and the same CPU threads, through the same
//! Switchyard model logic (tokenisation, pooling, KV-cache loop): which backend is best for a
//! model on a device has to be measured, not assumed.
//!
//! `cargo bench -p switchyard-backends --bench runtimes` (threads: SWITCHYARD_THREADS,
//! default 2). Prints sentences/s for embed (batch 32 and batch 1, 256 short sentences) and
//! tokens/s for greedy generation (64 tokens), with the OpenVINO / ORT ratio.

// `std::env::set_var` is `unsafe` (edition 2024); the bench sets it before any thread starts.
#![allow(unsafe_code)]

use std::path::Path;
use std::time::Instant;

use switchyard_backend_core::{DeviceRef, GenerateParams, LoadedModel, ModelRegistry, paths};
use switchyard_backends::BackendSet;

fn sentences() -> Vec<String> {
    let subjects = [
        "The cat",
        "A developer",
        "My neighbour",
        "The train",
        "Our team",
        "The weather",
        "This recipe",
        "The old library",
    ];
    let verbs = [
        "is waiting for",
        "talks about",
        "looks at",
        "depends on",
        "was built near",
        "forgot about",
        "really likes",
        "often ignores",
    ];
    let objects = [
        "the river",
        "a new release",
        "the morning news",
        "a quiet park",
    ];
    let mut out = Vec::new();
    for s in subjects {
        for v in verbs {
            for o in objects {
                out.push(format!("{s} {v} {o}."));
            }
        }
    }
    out
}

fn embed_rate(m: &mut Box<dyn LoadedModel>, texts: &[String], batch: usize) -> f64 {
    let pass = |m: &mut Box<dyn LoadedModel>| {
        let t = Instant::now();
        for chunk in texts.chunks(batch) {
            m.embed(chunk).expect("embed");
        }
        texts.len() as f64 / t.elapsed().as_secs_f64()
    };
    pass(m)
}

fn generate_rate(m: &mut Box<dyn LoadedModel>, tokens: u32) -> f64 {
    let params = GenerateParams {
        prompt: "Write a short story about a lighthouse keeper.".into(),
        max_tokens: tokens,
        ..Default::default()
    };
    let t = Instant::now();
    let s = m.generate(&params, &mut |_| true).expect("generate");
    s.completion_tokens as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let threads: usize = std::env::var("SWITCHYARD_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    // The backends read SWITCHYARD_THREADS when they are built.
    // SAFETY: single-threaded at this point; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("SWITCHYARD_THREADS", threads.to_string()) };
    let reg = ModelRegistry::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/registry.toml"),
        &paths::models_dir(),
    )
    .expect("registry");
    let set = BackendSet::from_env();
    let cpu = DeviceRef::cpu();
    println!("threads: {threads}; backends: {:?}", set.ids());
    let texts = sentences();

    // The two runtimes alternate round by round and each keeps its best round, so that
    // background load on a shared machine hits both alike.
    let embed = reg.get("minilm-l6-v2").expect("minilm registered");
    println!("embed all-MiniLM-L6-v2 int8, {} sentences:", texts.len());
    let ids = ["ort-cpu", "openvino"];
    let mut models: Vec<Box<dyn LoadedModel>> = ids
        .iter()
        .map(|id| set.load(embed, &cpu, id).expect("load"))
        .collect();
    for batch in [32usize, 1] {
        let mut best = [0.0f64; 2];
        for _ in 0..3 {
            for (b, m) in best.iter_mut().zip(models.iter_mut()) {
                *b = b.max(embed_rate(m, &texts, batch));
            }
        }
        for (id, r) in ids.iter().zip(best) {
            println!("  batch {batch:>2} {id:<9} {r:>8.0} sentences/s");
        }
        println!(
            "  batch {batch:>2} openvino / ort-cpu = {:.2}x",
            best[1] / best[0]
        );
    }
    drop(models);

    let mut spec = reg.get("smollm2-135m").expect("smollm2 registered").clone();
    spec.stop_tokens.clear();
    println!("generate SmolLM2-135M greedy 64 tokens:");
    let mut models: Vec<Box<dyn LoadedModel>> = ids
        .iter()
        .map(|id| set.load(&spec, &cpu, id).expect("load"))
        .collect();
    let mut best = [0.0f64; 2];
    for _ in 0..3 {
        for (b, m) in best.iter_mut().zip(models.iter_mut()) {
            *b = b.max(generate_rate(m, 64));
        }
    }
    for (id, r) in ids.iter().zip(best) {
        println!("  {id:<9} {r:>6.1} tokens/s");
    }
    println!("  openvino / ort-cpu = {:.2}x", best[1] / best[0]);
}
