//! The same real models through ONNX Runtime and OpenVINO on the CPU: the two runtimes must
//! agree, and the backend set must probe, calibrate and refuse bad requests clearly.
//!
//! Models come from `scripts/setup.sh` (`models/registry.toml` + `paths::models_dir()`).
//! When they are absent a test prints why and checks only what it can without them.

use std::path::Path;

use switchyard_backend_core::{
    BackendError, DeviceRef, DeviceType, GenerateParams, LoadedModel, ModelRegistry, paths,
};
use switchyard_backends::BackendSet;

fn registry() -> ModelRegistry {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/registry.toml");
    ModelRegistry::load(&file, &paths::models_dir()).expect("models/registry.toml parses")
}

/// The registry when the named models are prepared, else `None` (with the reason printed).
fn prepared(names: &[&str]) -> Option<ModelRegistry> {
    let reg = registry();
    let available = reg.available();
    let missing: Vec<&&str> = names
        .iter()
        .filter(|n| !available.iter().any(|a| a == **n))
        .collect();
    if missing.is_empty() {
        Some(reg)
    } else {
        eprintln!(
            "SKIP: models {missing:?} are not prepared under {} (run scripts/setup.sh)",
            paths::models_dir().display()
        );
        None
    }
}

fn set() -> BackendSet {
    let set = BackendSet::from_env();
    assert!(
        set.ids().contains(&"ort-cpu") && set.ids().contains(&"openvino"),
        "both runtimes must load (run scripts/setup.sh): {set:?}"
    );
    set
}

fn both(set: &BackendSet, reg: &ModelRegistry, model: &str) -> [Box<dyn LoadedModel>; 2] {
    let spec = reg.get(model).expect("model registered");
    let cpu = DeviceRef::cpu();
    [
        set.load(spec, &cpu, "ort-cpu").expect("loads on ort-cpu"),
        set.load(spec, &cpu, "openvino").expect("loads on openvino"),
    ]
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn texts(t: &[&str]) -> Vec<String> {
    t.iter().map(|s| s.to_string()).collect()
}

#[test]
fn embeddings_agree_across_runtimes_and_rank_related_sentences_first() {
    let Some(reg) = prepared(&["minilm-l6-v2"]) else {
        return;
    };
    let set = set();
    let [mut ort, mut ov] = both(&set, &reg, "minilm-l6-v2");
    let input = texts(&[
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "The stock market fell sharply today.",
        "Quarterly earnings beat analyst expectations, lifting the shares.",
    ]);
    let a = ort.embed(&input).unwrap();
    let b = ov.embed(&input).unwrap();
    assert_eq!(a.token_counts, b.token_counts);
    for (i, (x, y)) in a.vectors.iter().zip(&b.vectors).enumerate() {
        assert_eq!(x.len(), 384);
        let c = cosine(x, y);
        assert!(c >= 0.999, "sentence {i}: ORT vs OpenVINO cosine {c}");
    }
    for v in [&a.vectors, &b.vectors] {
        let related = cosine(&v[0], &v[1]);
        let unrelated = cosine(&v[0], &v[2]);
        assert!(
            related > 0.4 && unrelated < 0.2,
            "related {related}, unrelated {unrelated}"
        );
    }
}

#[test]
fn router_top_class_agrees_across_runtimes() {
    let Some(reg) = prepared(&["router"]) else {
        return;
    };
    let set = set();
    let labels = reg.get("router").unwrap().labels.clone();
    let [mut ort, mut ov] = both(&set, &reg, "router");
    let prompts = texts(&[
        "Write a Python function that checks if a number is prime",
        "hi! how are you today?",
        "Explain step by step why the sum of the angles of a triangle is 180 degrees, then prove it.",
        "Fix the bug in this Rust code: let v = vec![1,2]; v.push(3);",
    ]);
    let a = ort.classify(&prompts).unwrap();
    let b = ov.classify(&prompts).unwrap();
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x.top, y.top, "prompt {i}: ORT {x:?} vs OpenVINO {y:?}");
        for (p, q) in x.probabilities.iter().zip(&y.probabilities) {
            assert!((p - q).abs() < 0.02, "prompt {i}: {x:?} vs {y:?}");
        }
    }
    assert_eq!(labels[a[0].top], "code", "{:?}", a[0]);
    assert_eq!(labels[a[3].top], "code", "{:?}", a[3]);
}

fn greedy(model: &mut Box<dyn LoadedModel>, prompt: &str, n: u32) -> (Vec<u32>, String) {
    let mut ids = Vec::new();
    let mut text = String::new();
    let params = GenerateParams {
        prompt: prompt.into(),
        max_tokens: n,
        ..Default::default()
    };
    model
        .generate(&params, &mut |ev| {
            ids.push(ev.token_id);
            text.push_str(&ev.text);
            true
        })
        .unwrap();
    (ids, text)
}

#[test]
fn greedy_generation_agrees_across_runtimes_and_knows_paris() {
    let Some(reg) = prepared(&["smollm2-135m"]) else {
        return;
    };
    let set = set();
    let mut spec = reg.get("smollm2-135m").unwrap().clone();
    spec.stop_tokens.clear(); // compare 16 tokens even if one runtime would stop early
    let cpu = DeviceRef::cpu();
    let mut ort = set.load(&spec, &cpu, "ort-cpu").unwrap();
    let mut ov = set.load(&spec, &cpu, "openvino").unwrap();
    let prompt = "The capital of France is";
    let (a, text_a) = greedy(&mut ort, prompt, 16);
    let (b, text_b) = greedy(&mut ov, prompt, 16);
    assert!(a.len() >= 15, "ORT produced {} pieces: {text_a:?}", a.len());
    assert_eq!(a, b, "ORT {text_a:?} vs OpenVINO {text_b:?}");
    assert!(text_a.trim_start().starts_with("Paris"), "{text_a:?}");
    // A second request on the same instance starts from a fresh KV cache.
    let (again, _) = greedy(&mut ov, prompt, 16);
    assert_eq!(again, b);
}

#[test]
fn chat_template_and_stop_tokens_end_an_answer() {
    let Some(reg) = prepared(&["smollm2-135m"]) else {
        return;
    };
    let set = set();
    let spec = reg.get("smollm2-135m").unwrap();
    for backend in ["ort-cpu", "openvino"] {
        let mut m = set.load(spec, &DeviceRef::cpu(), backend).unwrap();
        let params = GenerateParams {
            messages: vec![("user".into(), "What is the capital of France?".into())],
            max_tokens: 48,
            ..Default::default()
        };
        let mut text = String::new();
        let summary = m
            .generate(&params, &mut |ev| {
                text.push_str(&ev.text);
                true
            })
            .unwrap();
        assert!(text.contains("Paris"), "{backend}: {text:?}");
        assert!(!text.contains("<|im_end|>"), "{backend}: {text:?}");
        assert!(summary.prompt_tokens > 10, "{summary:?}");
    }
}

#[test]
fn probe_reports_real_pairs_and_reasons() {
    let set = BackendSet::from_env();
    let ncs2 = DeviceRef {
        id: "usb-03e7:2485".into(),
        device_type: DeviceType::Ncs2,
        ordinal: 0,
    };
    let gpu = DeviceRef {
        id: "GPU-missing".into(),
        device_type: DeviceType::NvidiaGpu,
        ordinal: 0,
    };
    let results = set.probe(&[DeviceRef::cpu(), ncs2, gpu]);
    if prepared(&[]).is_some() && paths::models_dir().join("probe/tiny.onnx").is_file() {
        for id in ["ort-cpu", "openvino"] {
            let r = results
                .iter()
                .find(|r| r.device_id == "cpu" && r.backend == id)
                .unwrap_or_else(|| panic!("no probe of {id} on cpu: {results:?}"));
            let precisions = r.result.clone().unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(
                precisions.first(),
                Some(&switchyard_backend_core::Precision::F32),
                "{id} computes at f32 on the CPU"
            );
        }
    }
    let r = results
        .iter()
        .find(|r| r.device_id == "usb-03e7:2485" && r.backend == "openvino")
        .expect("openvino probed on the NCS2");
    let why = r.result.clone().unwrap_err();
    assert!(why.contains("2022.3"), "{why}");
    // No NVIDIA GPU here: every ort GPU pair is reported unusable, never as CPU.
    for r in results.iter().filter(|r| r.device_id == "GPU-missing") {
        assert!(r.backend.starts_with("ort-"), "{r:?}");
        assert!(r.result.is_err(), "{r:?}");
    }
}

#[test]
fn calibration_measures_int8_throughput_on_both_runtimes() {
    if !paths::models_dir()
        .join("calibrate/matmul_int8.onnx")
        .is_file()
    {
        eprintln!("SKIP: calibrate/matmul_int8.onnx is not prepared (run scripts/setup.sh)");
        return;
    }
    let set = set();
    for backend in ["ort-cpu", "openvino"] {
        let c = set.calibrate(&DeviceRef::cpu(), backend).unwrap();
        assert_eq!(c.precision, "int8", "{backend}: {c:?}");
        assert_eq!(c.per_size.len(), 3);
        // A CPU core does at least ~1 GOPS of int8 and far less than a petaop.
        assert!(c.tops > 1e-3 && c.tops < 1e3, "{backend}: {c:?}");
        eprintln!("{backend}: {:.3} int8 TOPS {:?}", c.tops, c.per_size);
    }
}

#[test]
fn bad_requests_are_clear_errors() {
    let set = BackendSet::from_env();
    let reg = registry();
    let spec = reg.get("minilm-l6-v2").unwrap();
    let err = set
        .load(spec, &DeviceRef::cpu(), "tensorflow")
        .err()
        .expect("unknown backend");
    let msg = err.to_string();
    assert!(
        msg.contains("unknown backend") && msg.contains("ort-cpu") && msg.contains("openvino"),
        "{msg}"
    );
    let Some(reg) = prepared(&["minilm-l6-v2", "router"]) else {
        return;
    };
    let spec = reg.get("minilm-l6-v2").unwrap();
    for backend in ["ort-cpu", "openvino"] {
        let mut m = set.load(spec, &DeviceRef::cpu(), backend).unwrap();
        let err = m.embed(&[]).unwrap_err();
        assert!(matches!(err, BackendError::InvalidInput(_)), "{err}");
        let err = m.classify(&texts(&["x"])).unwrap_err();
        assert!(matches!(err, BackendError::WrongStage { .. }), "{err}");

        let mut missing = spec.clone();
        missing.onnx = "/nonexistent/model.onnx".into();
        let err = set
            .load(&missing, &DeviceRef::cpu(), backend)
            .err()
            .unwrap();
        assert!(
            matches!(err, BackendError::ModelFileMissing(_)),
            "{backend}: {err}"
        );

        let dir = std::env::temp_dir().join(format!("sy-bad-{backend}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let corrupt = dir.join("model.onnx");
        std::fs::write(&corrupt, b"\x08\x07not an onnx graph at all").unwrap();
        let mut bad = spec.clone();
        bad.onnx = corrupt;
        let err = set.load(&bad, &DeviceRef::cpu(), backend).err().unwrap();
        assert!(
            matches!(err, BackendError::InvalidModel { .. }),
            "{backend}: {err}"
        );

        // The router graph has `probabilities`, not `last_hidden_state`.
        let mut wrong = spec.clone();
        wrong.onnx = reg.get("router").unwrap().onnx.clone();
        let err = set.load(&wrong, &DeviceRef::cpu(), backend).err().unwrap();
        assert!(
            err.to_string().contains("last_hidden_state"),
            "{backend}: {err}"
        );

        let mut refuse = spec.clone();
        refuse.overflow = switchyard_backend_core::OverflowPolicy::Refuse;
        let mut m = set.load(&refuse, &DeviceRef::cpu(), backend).unwrap();
        let err = m.embed(&["word ".repeat(300)]).unwrap_err();
        assert!(err.to_string().contains("at most 128"), "{backend}: {err}");
    }
}
