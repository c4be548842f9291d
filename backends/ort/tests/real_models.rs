//! Real models through ONNX Runtime on the CPU (prepared by scripts/setup.sh).

use std::path::Path;

use switchyard_backend_core::{
    Backend, BackendError, DeviceRef, DeviceType, FinishReason, GenerateParams, ModelRegistry,
    Precision, paths,
};
use switchyard_backend_ort::{OrtBackend, Provider};

fn registry() -> ModelRegistry {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/registry.toml");
    ModelRegistry::load(&file, &paths::models_dir()).expect("registry loads")
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn embeddings_rank_related_above_unrelated_and_batch_matches_single() {
    let reg = registry();
    let ort = OrtBackend::new(Provider::Cpu).expect("onnxruntime library (run scripts/setup.sh)");
    let mut m = ort
        .load(reg.get("minilm-l6-v2").unwrap(), &DeviceRef::cpu())
        .unwrap();
    let texts: Vec<String> = [
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "The stock market fell sharply today.",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = m.embed(&texts).unwrap();
    assert_eq!(out.vectors.len(), 3);
    assert_eq!(out.vectors[0].len(), 384);
    let related = cosine(&out.vectors[0], &out.vectors[1]);
    let unrelated = cosine(&out.vectors[0], &out.vectors[2]);
    assert!(
        related > 0.4 && unrelated < 0.2 && related > unrelated + 0.3,
        "related {related}, unrelated {unrelated}"
    );
    // Padding in a batch must not change a sentence's vector.
    let single = m.embed(&texts[..1]).unwrap();
    assert!(cosine(&single.vectors[0], &out.vectors[0]) > 0.9999);
    // More inputs than the model's max_batch run in chunks, in order.
    let mut small = reg.get("minilm-l6-v2").unwrap().clone();
    small.max_batch = 2;
    let mut chunked = ort.load(&small, &DeviceRef::cpu()).unwrap();
    let parts = chunked.embed(&texts).unwrap();
    assert_eq!(parts.vectors.len(), 3);
    for (a, b) in parts.vectors.iter().zip(&out.vectors) {
        assert!(cosine(a, b) > 0.9999);
    }
}

#[test]
fn ort_cpu_runs_at_f32_and_refuses_a_precision_it_cannot_honour() {
    let reg = registry();
    let ort = OrtBackend::new(Provider::Cpu).expect("onnxruntime library (run scripts/setup.sh)");
    let spec = reg.get("minilm-l6-v2").unwrap();
    let m = ort.load(spec, &DeviceRef::cpu()).unwrap();
    assert_eq!(m.precision(), Precision::F32);
    for asked in [Precision::Bf16, Precision::F16] {
        let mut other = spec.clone();
        other.precision = asked;
        let err = ort.load(&other, &DeviceRef::cpu()).err().expect("refused");
        assert!(
            matches!(err, BackendError::DeviceUnsupported { .. }),
            "{err}"
        );
        assert!(err.to_string().contains(asked.as_str()), "{err}");
    }
    assert_eq!(ort.probe(&DeviceRef::cpu()).unwrap(), vec![Precision::F32]);
}

#[test]
fn router_sends_a_coding_prompt_to_the_code_tier() {
    let reg = registry();
    let spec = reg.get("router").unwrap();
    let ort = OrtBackend::new(Provider::Cpu).unwrap();
    let mut m = ort.load(spec, &DeviceRef::cpu()).unwrap();
    let out = m
        .classify(&[
            "Write a Python function that checks if a number is prime".to_string(),
            "hi, how are you?".to_string(),
        ])
        .unwrap();
    assert_eq!(spec.labels[out[0].top], "code", "{:?}", out[0]);
    assert!((out[0].probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-3);
}

#[test]
fn greedy_generation_says_paris() {
    let reg = registry();
    let ort = OrtBackend::new(Provider::Cpu).unwrap();
    let mut m = ort
        .load(reg.get("smollm2-135m").unwrap(), &DeviceRef::cpu())
        .unwrap();
    let mut text = String::new();
    let params = GenerateParams {
        prompt: "The capital of France is".into(),
        max_tokens: 8,
        ..Default::default()
    };
    let summary = m
        .generate(&params, &mut |ev| {
            text.push_str(&ev.text);
            true
        })
        .unwrap();
    assert!(text.contains("Paris"), "{text:?}");
    assert!(summary.completion_tokens >= 1 && summary.completion_tokens <= 8);

    // A stop string ends generation and is not sent.
    let mut stopped = String::new();
    let params = GenerateParams {
        prompt: "The capital of France is".into(),
        max_tokens: 32,
        stop: vec![".".into()],
        ..Default::default()
    };
    let summary = m
        .generate(&params, &mut |ev| {
            stopped.push_str(&ev.text);
            true
        })
        .unwrap();
    assert_eq!(summary.finish_reason, FinishReason::Stop, "{stopped:?}");
    assert!(
        stopped.contains("Paris") && !stopped.contains('.'),
        "{stopped:?}"
    );

    // A consumer that goes away cancels after the first piece.
    let summary = m.generate(&params, &mut |_| false).unwrap();
    assert_eq!(summary.finish_reason, FinishReason::Cancelled);
    assert_eq!(summary.completion_tokens, 1);
}

#[test]
fn a_continuation_resumes_the_partial_reply_instead_of_starting_a_new_one() {
    let reg = registry();
    let ort = OrtBackend::new(Provider::Cpu).unwrap();
    let mut m = ort
        .load(reg.get("smollm2-135m").unwrap(), &DeviceRef::cpu())
        .unwrap();
    let params = GenerateParams {
        messages: vec![(
            "user".into(),
            "Count from 1 to 20, separated by commas.".into(),
        )],
        continuation: "1, 2, 3, 4, 5, 6,".into(),
        max_tokens: 6,
        ..Default::default()
    };
    let mut text = String::new();
    m.generate(&params, &mut |ev| {
        text.push_str(&ev.text);
        true
    })
    .unwrap();
    assert!(
        text.trim_start().starts_with('7'),
        "continues after \"6,\": {text:?}"
    );

    // The same partial reply as the client's own last assistant message (prefill, as a
    // resume through another Switchyard's Ollama or OpenAI API sends it): continued too.
    let prefilled = GenerateParams {
        messages: vec![
            params.messages[0].clone(),
            ("assistant".into(), "1, 2, 3, 4, 5, 6,".into()),
        ],
        continuation: String::new(),
        ..params.clone()
    };
    let mut again = String::new();
    m.generate(&prefilled, &mut |ev| {
        again.push_str(&ev.text);
        true
    })
    .unwrap();
    assert_eq!(again, text, "prefill and continuation are the same prompt");
}

#[test]
fn bad_model_files_and_wrong_devices_are_clear_errors() {
    let reg = registry();
    let ort = OrtBackend::new(Provider::Cpu).unwrap();
    let mut spec = reg.get("minilm-l6-v2").unwrap().clone();
    spec.onnx = "/nonexistent/model.onnx".into();
    let err = ort
        .load(&spec, &DeviceRef::cpu())
        .err()
        .expect("missing file");
    assert!(matches!(err, BackendError::ModelFileMissing(_)), "{err}");

    let dir = std::env::temp_dir().join(format!("sy-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let corrupt = dir.join("model.onnx");
    std::fs::write(&corrupt, b"definitely not protobuf").unwrap();
    spec.onnx = corrupt;
    let err = ort
        .load(&spec, &DeviceRef::cpu())
        .err()
        .expect("corrupt file");
    assert!(matches!(err, BackendError::InvalidModel { .. }), "{err}");

    // The router graph has no last_hidden_state: loading it as an embedder names the output.
    let mut wrong = reg.get("minilm-l6-v2").unwrap().clone();
    wrong.onnx = reg.get("router").unwrap().onnx.clone();
    let err = ort
        .load(&wrong, &DeviceRef::cpu())
        .err()
        .expect("wrong outputs");
    assert!(err.to_string().contains("last_hidden_state"), "{err}");

    let gpu = DeviceRef {
        id: "GPU-x".into(),
        device_type: DeviceType::NvidiaGpu,
        ordinal: 0,
    };
    let err = ort
        .load(reg.get("minilm-l6-v2").unwrap(), &gpu)
        .err()
        .expect("cpu backend on a gpu");
    assert!(
        matches!(err, BackendError::DeviceUnsupported { .. }),
        "{err}"
    );
}

#[test]
fn over_long_input_is_truncated_or_refused_per_registry() {
    let reg = registry();
    let ort = OrtBackend::new(Provider::Cpu).unwrap();
    let mut m = ort
        .load(reg.get("minilm-l6-v2").unwrap(), &DeviceRef::cpu())
        .unwrap();
    let long = "word ".repeat(400);
    let out = m.embed(std::slice::from_ref(&long)).unwrap();
    assert_eq!(out.token_counts, vec![128]);
    let mut refuse = reg.get("minilm-l6-v2").unwrap().clone();
    refuse.overflow = switchyard_backend_core::OverflowPolicy::Refuse;
    let mut m = ort.load(&refuse, &DeviceRef::cpu()).unwrap();
    let err = m.embed(&[long]).unwrap_err();
    assert!(err.to_string().contains("at most 128"), "{err}");
}

#[test]
#[ignore = "needs NVIDIA GPU"]
fn cuda_provider_runs_embeddings_on_the_gpu() {
    let reg = registry();
    let ort = OrtBackend::new(Provider::Cuda).unwrap();
    let gpu = DeviceRef {
        id: "GPU-0".into(),
        device_type: DeviceType::NvidiaGpu,
        ordinal: 0,
    };
    let mut m = ort
        .load(reg.get("minilm-l6-v2").unwrap(), &gpu)
        .expect("CUDA EP registers (onnxruntime-gpu)");
    let out = m.embed(&["hello world".to_string()]).unwrap();
    assert_eq!(out.vectors[0].len(), 384);
}

#[test]
fn a_missing_gpu_provider_is_an_error_never_a_cpu_fallback() {
    let gpu = DeviceRef {
        id: "GPU-99".into(),
        device_type: DeviceType::NvidiaGpu,
        ordinal: 99,
    };
    for provider in [Provider::Cuda, Provider::TensorRt] {
        match OrtBackend::new(provider) {
            // The CPU onnxruntime wheel (what setup.sh installs) has no GPU providers.
            Err(e) => {
                assert!(
                    matches!(e, BackendError::RuntimeUnavailable(_)),
                    "{provider:?}: {e}"
                );
                assert!(e.to_string().contains("execution provider"), "{e}");
            }
            // An onnxruntime-gpu library: a GPU that does not exist must still fail.
            Ok(b) => {
                let err = b.probe(&gpu).unwrap_err();
                assert!(
                    matches!(err, BackendError::DeviceUnsupported { .. }),
                    "{provider:?}: {err}"
                );
            }
        }
    }
}
