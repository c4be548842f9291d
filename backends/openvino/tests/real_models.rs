//! Real models through the native OpenVINO runtime on this machine's CPU (models and the
//! OpenVINO wheel prepared by scripts/setup.sh).

use std::path::Path;

use switchyard_backend_core::session::{Session, Tensor};
use switchyard_backend_core::{
    Backend, BackendError, DeviceRef, DeviceType, GenerateParams, ModelRegistry, Precision, paths,
};
use switchyard_backend_openvino::{OpenVinoBackend, calibrate};

fn registry() -> ModelRegistry {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/registry.toml");
    ModelRegistry::load(&file, &paths::models_dir()).expect("registry loads")
}

fn backend() -> OpenVinoBackend {
    OpenVinoBackend::new().expect("OpenVINO library (run scripts/setup.sh)")
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn probe_runs_the_tiny_model_on_the_cpu() {
    let ov = backend();
    assert!(ov.available_devices().unwrap().contains(&"CPU".to_string()));
    let precisions = ov.probe(&DeviceRef::cpu()).unwrap();
    assert_eq!(precisions.first(), Some(&Precision::F32), "{precisions:?}");
}

/// The f32 matmul graph with a deterministic, non-trivial input; the exact f32 product is
/// the reference (bf16 keeps 8 bits of mantissa: its error is ~100× the tolerance).
fn matmul_f32_error(s: &mut dyn Session) -> f32 {
    let n = 64;
    let a: Vec<f32> = (0..n * n)
        .map(|i| ((i * 7919 % 1000) as f32) / 997.0 - 0.5)
        .collect();
    let b: Vec<f32> = (0..n * n)
        .map(|i| ((i * 104_729 % 1000) as f32) / 991.0 - 0.5)
        .collect();
    let out = s
        .run(
            vec![
                ("A".into(), Tensor::f32(vec![n, n], a.clone())),
                ("B".into(), Tensor::f32(vec![n, n], b.clone())),
            ],
            &s.output_names()[..1],
        )
        .unwrap();
    let (_, c) = out.into_iter().next().unwrap().into_f32("C").unwrap();
    let mut worst = 0f32;
    for i in 0..n {
        for j in 0..n {
            let want: f64 = (0..n)
                .map(|k| f64::from(a[i * n + k]) * f64::from(b[k * n + j]))
                .sum();
            worst = worst.max((c[i * n + j] - want as f32).abs() / (want.abs() as f32).max(1.0));
        }
    }
    worst
}

#[test]
fn compiled_model_reads_back_f32_whatever_this_cpu_would_default_to() {
    let file = paths::models_dir().join("calibrate/matmul_f32.onnx");
    let ov = backend();
    let mut s = ov
        .open("matmul", &file, &DeviceRef::cpu(), Precision::F32)
        .unwrap();
    // Read from the compiled model now, independently of what `open` checked.
    let hint = s.runtime_precision_hint().unwrap();
    assert_eq!(hint.parse::<Precision>(), Ok(Precision::F32), "{hint}");
    assert_eq!(s.precision(), Precision::F32);
    // And the numbers are f32 numbers (on an AVX512_BF16/AMX CPU OpenVINO's default, bf16,
    // misses this by two orders of magnitude).
    let err = matmul_f32_error(&mut s);
    assert!(err < 1e-4, "relative error {err}");
    // A loaded registry model reports the precision it runs at, too.
    let reg = registry();
    let m = ov
        .load(reg.get("minilm-l6-v2").unwrap(), &DeviceRef::cpu())
        .unwrap();
    assert_eq!(m.precision(), Precision::F32);
}

#[test]
fn asking_for_bf16_runs_bf16_where_the_cpu_can_and_is_refused_where_it_cannot() {
    // Where OpenVINO computes bf16 is the plugin's business: natively with AVX512_BF16/AMX
    // (`BF16` among its capabilities), emulated on other AVX-512 CPUs (seen on a Xeon without
    // AVX512_BF16), not at all without AVX-512. What must hold everywhere: a grant really
    // computes at bf16 (its numbers miss the f32 product by bf16's rounding), a refusal says
    // so, and a CPU with native BF16 grants it.
    let file = paths::models_dir().join("calibrate/matmul_f32.onnx");
    let ov = backend();
    let caps = ov.capabilities(&DeviceRef::cpu()).unwrap();
    let native_bf16 = caps.iter().any(|c| c == "BF16");
    let granted = match ov.open("matmul", &file, &DeviceRef::cpu(), Precision::Bf16) {
        Ok(mut s) => {
            assert_eq!(s.precision(), Precision::Bf16);
            let hint = s.runtime_precision_hint().unwrap();
            assert_eq!(hint.parse::<Precision>(), Ok(Precision::Bf16), "{hint}");
            // bf16 keeps 8 bits of mantissa: ~1e-3 relative error, where f32 gives ~1e-7.
            let err = matmul_f32_error(&mut s);
            assert!(err > 1e-4, "granted bf16 but computed f32 numbers ({err})");
            true
        }
        Err(e) => {
            assert!(
                !native_bf16,
                "bf16 refused on a CPU with BF16 ({caps:?}): {e}"
            );
            assert!(matches!(e, BackendError::DeviceUnsupported { .. }), "{e}");
            let msg = e.to_string();
            assert!(msg.contains("bf16") && msg.contains("f32"), "{msg}");
            false
        }
    };
    // The registry model asked for bf16 behaves the same way through `load`.
    let reg = registry();
    let mut spec = reg.get("minilm-l6-v2").unwrap().clone();
    spec.precision = Precision::Bf16;
    match ov.load(&spec, &DeviceRef::cpu()) {
        Ok(m) => assert!(granted && m.precision() == Precision::Bf16),
        Err(e) => assert!(!granted && e.to_string().contains("bf16"), "{e}"),
    }
}

#[test]
fn embeddings_rank_related_above_unrelated_with_varying_batch_and_length() {
    let reg = registry();
    let mut m = backend()
        .load(reg.get("minilm-l6-v2").unwrap(), &DeviceRef::cpu())
        .unwrap();
    let texts = strings(&[
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "The stock market fell today.",
    ]);
    let out = m.embed(&texts).unwrap();
    assert_eq!(out.vectors.len(), 3);
    assert_eq!(out.vectors[0].len(), 384);
    let related = cosine(&out.vectors[0], &out.vectors[1]);
    let unrelated = cosine(&out.vectors[0], &out.vectors[2]);
    assert!(
        related > 0.4 && unrelated < 0.2 && related > unrelated + 0.3,
        "related {related}, unrelated {unrelated}"
    );
    // Another batch size and sequence length on the same compiled (dynamic) model; padding
    // in a batch must not change a sentence's vector.
    let single = m.embed(&texts[..1]).unwrap();
    assert!(cosine(&single.vectors[0], &out.vectors[0]) > 0.9999);
    let long = m
        .embed(&strings(&[
            "A man is eating food.",
            "This considerably longer sentence forces a longer padded sequence than before.",
        ]))
        .unwrap();
    assert!(cosine(&long.vectors[0], &out.vectors[0]) > 0.9999);
    assert!(long.token_counts[1] > out.token_counts[1]);
}

#[test]
fn two_cpu_streams_of_one_compiled_model_run_at_once_and_agree_with_a_single_instance() {
    let reg = registry();
    let spec = reg.get("minilm-l6-v2").unwrap();
    let ov = backend();
    let texts = strings(&["A man is eating food.", "The stock market fell today."]);
    let single = ov
        .load(spec, &DeviceRef::cpu())
        .unwrap()
        .embed(&texts)
        .unwrap();
    let streams = ov.load_streams(spec, &DeviceRef::cpu(), 2).unwrap();
    assert_eq!(streams.len(), 2, "one instance per stream on the CPU");
    // Each stream on a thread of its own, at the same time (they share the compiled model).
    let outs: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = streams
            .into_iter()
            .map(|mut m| {
                let texts = texts.clone();
                scope.spawn(move || (m.precision(), m.embed(&texts).unwrap()))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (precision, out) in outs {
        assert_eq!(precision, Precision::F32);
        for (a, b) in out.vectors.iter().zip(&single.vectors) {
            assert!(
                cosine(a, b) > 0.9999,
                "a stream computes what one instance does"
            );
        }
    }
    // A generator runs one instance whatever is asked.
    let decoder = reg.get("smollm2-135m").unwrap();
    assert_eq!(
        ov.load_streams(decoder, &DeviceRef::cpu(), 2)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn router_sends_a_coding_prompt_to_the_code_tier() {
    let reg = registry();
    let spec = reg.get("router").unwrap();
    let mut m = backend().load(spec, &DeviceRef::cpu()).unwrap();
    let out = m
        .classify(&strings(&[
            "Write a Python function that checks if a number is prime",
            "hi, how are you?",
        ]))
        .unwrap();
    assert_eq!(spec.labels[out[0].top], "code", "{:?}", out[0]);
    assert!((out[0].probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-3);
}

#[test]
fn empty_kv_cache_tensors_are_accepted() {
    // The first decode step feeds [1, 3, 0, 64] pasts: OpenVINO must take zero-sized inputs.
    let reg = registry();
    let spec = reg.get("smollm2-135m").unwrap();
    let mut s = backend()
        .open(&spec.name, &spec.onnx, &DeviceRef::cpu(), Precision::F32)
        .unwrap();
    assert_eq!(
        s.input_dims("past_key_values.0.key"),
        Some(vec![-1, 3, -1, 64])
    );
    let layers = s
        .input_names()
        .iter()
        .filter(|n| n.starts_with("past_key_values."))
        .count()
        / 2;
    assert_eq!(layers, 30);
    let mut inputs = vec![
        (
            "input_ids".to_string(),
            Tensor::i64(vec![1, 2], vec![504, 3458]),
        ),
        (
            "attention_mask".to_string(),
            Tensor::i64(vec![1, 2], vec![1, 1]),
        ),
        (
            "position_ids".to_string(),
            Tensor::i64(vec![1, 2], vec![0, 1]),
        ),
    ];
    for i in 0..layers {
        for kind in ["key", "value"] {
            inputs.push((
                format!("past_key_values.{i}.{kind}"),
                Tensor::f32(vec![1, 3, 0, 64], Vec::new()),
            ));
        }
    }
    let out = s
        .run(
            inputs,
            &["logits".to_string(), "present.29.value".to_string()],
        )
        .unwrap();
    assert_eq!(out[0].shape, vec![1, 2, 49152]);
    assert_eq!(out[1].shape, vec![1, 3, 2, 64]);
}

#[test]
fn greedy_generation_says_paris() {
    let reg = registry();
    let mut m = backend()
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
}

#[test]
fn bad_model_files_and_wrong_devices_are_clear_errors() {
    let reg = registry();
    let ov = backend();
    let mut spec = reg.get("minilm-l6-v2").unwrap().clone();
    spec.onnx = "/nonexistent/model.onnx".into();
    let err = ov
        .load(&spec, &DeviceRef::cpu())
        .err()
        .expect("missing file");
    assert!(matches!(err, BackendError::ModelFileMissing(_)), "{err}");
    assert!(err.to_string().contains("/nonexistent/model.onnx"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("model.onnx");
    std::fs::write(&corrupt, b"definitely not protobuf").unwrap();
    spec.onnx = corrupt;
    let err = ov
        .load(&spec, &DeviceRef::cpu())
        .err()
        .expect("corrupt file");
    assert!(matches!(err, BackendError::InvalidModel { .. }), "{err}");
    assert!(err.to_string().contains("model.onnx"), "{err}");

    // The router graph has no last_hidden_state: loading it as an embedder names the output.
    let mut wrong = reg.get("minilm-l6-v2").unwrap().clone();
    wrong.onnx = reg.get("router").unwrap().onnx.clone();
    let err = ov
        .load(&wrong, &DeviceRef::cpu())
        .err()
        .expect("wrong outputs");
    assert!(err.to_string().contains("last_hidden_state"), "{err}");

    let ncs2 = DeviceRef {
        id: "usb-03e7:2485".into(),
        device_type: DeviceType::Ncs2,
        ordinal: 0,
    };
    let err = ov
        .load(reg.get("minilm-l6-v2").unwrap(), &ncs2)
        .err()
        .expect("ncs2");
    assert!(
        matches!(err, BackendError::DeviceUnsupported { .. }) && err.to_string().contains("2022.3"),
        "{err}"
    );
    let err = ov.probe(&ncs2).unwrap_err();
    assert!(
        matches!(err, BackendError::DeviceUnsupported { .. }),
        "{err}"
    );

    let nvidia = DeviceRef {
        id: "GPU-x".into(),
        device_type: DeviceType::NvidiaGpu,
        ordinal: 0,
    };
    let err = ov.probe(&nvidia).unwrap_err();
    assert!(
        matches!(err, BackendError::DeviceUnsupported { .. }),
        "{err}"
    );
}

#[test]
fn an_unlisted_intel_gpu_is_refused_not_run_on_the_cpu() {
    let ov = backend();
    if ov
        .available_devices()
        .unwrap()
        .iter()
        .any(|d| d.starts_with("GPU"))
    {
        return; // covered by the GPU test on machines that have one
    }
    let gpu = DeviceRef {
        id: "0000:03:00.0".into(),
        device_type: DeviceType::IntelGpu,
        ordinal: 0,
    };
    let err = ov.probe(&gpu).unwrap_err();
    assert!(
        matches!(err, BackendError::DeviceUnsupported { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("does not list"), "{err}");
}

#[test]
fn calibration_measures_int8_matmul_throughput() {
    let model = paths::models_dir().join("calibrate/matmul_int8.onnx");
    let ops = calibrate(&DeviceRef::cpu(), &model, 128, 3).unwrap();
    assert!(ops.is_finite() && ops > 0.0, "{ops}");
    let err = calibrate(&DeviceRef::cpu(), Path::new("/nonexistent.onnx"), 8, 1).unwrap_err();
    assert!(matches!(err, BackendError::ModelFileMissing(_)), "{err}");
}

#[test]
#[ignore = "needs Intel GPU"]
fn intel_gpu_runs_embeddings() {
    let reg = registry();
    let ov = backend();
    let gpu = DeviceRef {
        id: "intel-gpu-0".into(),
        device_type: DeviceType::IntelGpu,
        ordinal: 0,
    };
    ov.probe(&gpu).expect("OpenVINO lists the Intel GPU");
    let mut m = ov.load(reg.get("minilm-l6-v2").unwrap(), &gpu).unwrap();
    let out = m
        .embed(&strings(&[
            "A man is eating food.",
            "A man is eating a piece of bread.",
        ]))
        .unwrap();
    assert!(cosine(&out.vectors[0], &out.vectors[1]) > 0.4);
}

#[test]
fn the_cpu_plugin_reports_no_device_gops_and_that_is_not_an_error() {
    // OpenVINO's CPU plugin does not support DEVICE_GOPS: no figure, no error (the CPU's
    // TOPS come from the ISA formula or calibration instead).
    assert_eq!(backend().device_tops(&DeviceRef::cpu()).unwrap(), None);
    // An NVIDIA GPU is not OpenVINO's: a clear error, not a figure.
    let nvidia = DeviceRef {
        id: "GPU-1".into(),
        device_type: DeviceType::NvidiaGpu,
        ordinal: 0,
    };
    let err = backend().device_tops(&nvidia).unwrap_err().to_string();
    assert!(err.contains("ort-cuda"), "{err}");
}

#[test]
#[ignore = "needs Intel GPU"]
fn intel_gpu_reports_its_int8_gops() {
    let gpu = DeviceRef {
        id: "intel-gpu-0".into(),
        device_type: DeviceType::IntelGpu,
        ordinal: 0,
    };
    let t = backend()
        .device_tops(&gpu)
        .unwrap()
        .expect("the GPU plugin reports DEVICE_GOPS");
    assert!(
        t.int8_tops > 0.0 && t.detail.contains("DEVICE_GOPS"),
        "{t:?}"
    );
}
