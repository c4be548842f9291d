//! Issue 4 benchmarks, each against a baseline measured in the same run:
//!
//! 1. in-process embed throughput (batch 32, 256 short sentences, N threads) through the
//!    Switchyard ORT backend (tokenisation + pooling included) vs the `onnxruntime` Python
//!    package on the same model and thread count (`scripts/baseline_ort.py embed`);
//! 2. generation tokens/s (greedy, 64 tokens) through the Switchyard decode loop vs a direct
//!    ORT decode loop written against `ort` with the same session options.
//!
//! `cargo bench -p switchyard-backend-ort --bench ort_backend` (threads: SWITCHYARD_THREADS,
//! default 2).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{DynValue, Tensor};
use switchyard_backend_core::{Backend, DeviceRef, GenerateParams, ModelRegistry, paths};
use switchyard_backend_ort::{OrtBackend, Provider, runtime};

const SUBJECTS: [&str; 8] = [
    "The cat",
    "A developer",
    "My neighbour",
    "The train",
    "Our team",
    "The weather",
    "This recipe",
    "The old library",
];
const VERBS: [&str; 8] = [
    "is waiting for",
    "talks about",
    "looks at",
    "depends on",
    "was built near",
    "forgot about",
    "really likes",
    "often ignores",
];
const OBJECTS: [&str; 4] = [
    "the river",
    "a new release",
    "the morning news",
    "a quiet park",
];

fn sentences() -> Vec<String> {
    let mut out = Vec::new();
    for s in SUBJECTS {
        for v in VERBS {
            for o in OBJECTS {
                out.push(format!("{s} {v} {o}."));
            }
        }
    }
    out.truncate(256);
    out
}

fn python_baseline(args: &[&str], key: &str) -> Option<f64> {
    let python = std::env::var("SWITCHYARD_PYTHON").unwrap_or_else(|_| {
        paths::cache_dir()
            .join("venv/bin/python")
            .display()
            .to_string()
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/baseline_ort.py");
    let out = Command::new(python).arg(script).args(args).output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse().ok()))
}

fn direct_decode(file: &Path, threads: usize, prompt: &[i64], new_tokens: usize) -> f64 {
    let env = &runtime().expect("ort").environment;
    let mut s = Session::builder(env)
        .unwrap()
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .unwrap()
        .with_intra_threads(threads)
        .unwrap()
        .with_inter_threads(1)
        .unwrap()
        .commit_from_file(file)
        .unwrap();
    let layers = s
        .inputs()
        .iter()
        .filter(|o| o.name().ends_with(".key"))
        .count();
    let start = Instant::now();
    let mut past: Vec<DynValue> = (0..layers * 2)
        .map(|_| {
            Tensor::from_array((vec![1i64, 3, 0, 64], Vec::<f32>::new()))
                .unwrap()
                .into_dyn()
        })
        .collect();
    let mut ids = prompt.to_vec();
    let mut past_len = 0usize;
    for _ in 0..new_tokens {
        let n = ids.len();
        let mut inputs: Vec<(String, DynValue)> = vec![
            (
                "input_ids".into(),
                Tensor::from_array((vec![1i64, n as i64], ids.clone()))
                    .unwrap()
                    .into_dyn(),
            ),
            (
                "attention_mask".into(),
                Tensor::from_array((vec![1i64, (past_len + n) as i64], vec![1i64; past_len + n]))
                    .unwrap()
                    .into_dyn(),
            ),
            (
                "position_ids".into(),
                Tensor::from_array((
                    vec![1i64, n as i64],
                    (past_len as i64..(past_len + n) as i64).collect::<Vec<_>>(),
                ))
                .unwrap()
                .into_dyn(),
            ),
        ];
        for (i, v) in past.drain(..).enumerate() {
            let kind = if i % 2 == 0 { "key" } else { "value" };
            inputs.push((format!("past_key_values.{}.{kind}", i / 2), v));
        }
        let mut out = s.run(inputs).unwrap();
        let (shape, logits) = out["logits"].try_extract_tensor::<f32>().unwrap();
        let vocab = shape[2] as usize;
        let last = &logits[logits.len() - vocab..];
        let next = last
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0 as i64;
        for l in 0..layers {
            past.push(out.remove(format!("present.{l}.key")).unwrap());
            past.push(out.remove(format!("present.{l}.value")).unwrap());
        }
        past_len += n;
        ids = vec![next];
    }
    new_tokens as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let threads: usize = std::env::var("SWITCHYARD_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let reg = ModelRegistry::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/registry.toml"),
        &paths::models_dir(),
    )
    .expect("registry (run scripts/setup.sh)");
    let ort = OrtBackend::new(Provider::Cpu)
        .expect("onnxruntime")
        .with_threads(threads);
    println!("threads: {threads}");

    // 1. Embeddings, batch 32.
    let texts = sentences();
    let mut m = ort
        .load(reg.get("minilm-l6-v2").unwrap(), &DeviceRef::cpu())
        .unwrap();
    let pass = |m: &mut Box<dyn switchyard_backend_core::LoadedModel>| {
        let t = Instant::now();
        for chunk in texts.chunks(32) {
            m.embed(chunk).unwrap();
        }
        texts.len() as f64 / t.elapsed().as_secs_f64()
    };
    pass(&mut m);
    // Interleave the two (rounds of: best of 3 Rust passes, one Python run, itself best of
    // 3) so that background load on a shared machine hits both alike; report the median
    // ratio and its spread.
    const ROUNDS: usize = 5;
    let mut rounds: Vec<(f64, f64)> = Vec::new();
    for _ in 0..ROUNDS {
        let ours = (0..3).map(|_| pass(&mut m)).fold(0.0, f64::max);
        match python_baseline(
            &["embed", "--threads", &threads.to_string()],
            "sentences_per_s",
        ) {
            Some(b) => rounds.push((ours, b)),
            None => {
                println!(
                    "embed: ours {ours:.0} sentences/s; onnxruntime Python baseline unavailable (run scripts/setup.sh)"
                );
                break;
            }
        }
    }
    if !rounds.is_empty() {
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let mut ratios: Vec<f64> = rounds.iter().map(|(o, b)| o / b).collect();
        ratios.sort_by(f64::total_cmp);
        println!(
            "embed batch 32, all-MiniLM-L6-v2 int8 ({} interleaved rounds, medians):",
            rounds.len()
        );
        println!(
            "  switchyard ort-cpu (Rust, tokenise+pool): {:>8.0} sentences/s",
            median(rounds.iter().map(|r| r.0).collect())
        );
        println!(
            "  onnxruntime Python baseline:              {:>8.0} sentences/s   ratio {:.2}x (min {:.2}, max {:.2}; goal >= 1.0x)",
            median(rounds.iter().map(|r| r.1).collect()),
            median(ratios.clone()),
            ratios[0],
            ratios[ratios.len() - 1]
        );
    }

    // 2. Generation, greedy, 64 tokens, no early stop.
    let mut spec = reg.get("smollm2-135m").unwrap().clone();
    spec.stop_tokens.clear();
    let prompt = "Write a short story about a lighthouse keeper.";
    let mut g = ort.load(&spec, &DeviceRef::cpu()).unwrap();
    let params = GenerateParams {
        prompt: prompt.into(),
        max_tokens: 64,
        ..Default::default()
    };
    g.generate(
        &GenerateParams {
            max_tokens: 4,
            ..params.clone()
        },
        &mut |_| true,
    )
    .unwrap();
    let tok = tokenizers::Tokenizer::from_file(&spec.tokenizer).unwrap();
    let ids: Vec<i64> = tok
        .encode(prompt, false)
        .unwrap()
        .get_ids()
        .iter()
        .map(|&x| x as i64)
        .collect();
    direct_decode(&spec.onnx, threads, &ids, 4);
    // Alternate the two so background load hits both alike; keep the best of each.
    let (mut best, mut direct) = (0.0f64, 0.0f64);
    for _ in 0..3 {
        let t = Instant::now();
        let s = g.generate(&params, &mut |_| true).unwrap();
        best = best.max(s.completion_tokens as f64 / t.elapsed().as_secs_f64());
        direct = direct.max(direct_decode(&spec.onnx, threads, &ids, 64));
    }
    println!("generate greedy 64 tokens, SmolLM2-135M:");
    println!("  switchyard decode loop:   {best:>6.1} tokens/s");
    println!(
        "  direct ORT decode loop:   {direct:>6.1} tokens/s   ratio {:.2}x (goal >= 0.95x)",
        best / direct
    );
    if let Some(py) = python_baseline(
        &["generate", "--threads", &threads.to_string()],
        "tokens_per_s",
    ) {
        println!(
            "  onnxruntime Python loop:  {py:>6.1} tokens/s   ratio {:.2}x",
            best / py
        );
    }
}
