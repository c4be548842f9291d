//! The Intel NPU path: its recorded properties decide static shapes and precision, and the
//! static-shape path (buckets, padding, cutting) gives the dynamic graph's results. It runs on
//! this machine's CPU, whose plugin compiles the same static graphs; the real device test is
//! ignored without an NPU.

use std::collections::BTreeMap;
use std::path::Path;

use switchyard_backend_core::{
    Backend, DeviceRef, DeviceType, ModelRegistry, Precision, decoder, paths,
};
use switchyard_backend_openvino::{DeviceTraits, OpenVinoBackend, static_shapes};

fn registry() -> ModelRegistry {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/registry.toml");
    ModelRegistry::load(&file, &paths::models_dir()).expect("registry loads")
}

fn recorded_npu() -> DeviceTraits {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npu-meteor-lake.json");
    let props: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    DeviceTraits::from_properties(DeviceType::IntelNpu, &props)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_npu_static_plan_compiles_to_exactly_those_shapes_read_back_from_openvino_on_the_cpu() {
    // The NPU's recorded properties (a fixture: no NPU here) ask for static shapes and f16.
    let t = recorded_npu();
    assert!(t.static_shapes && t.one_request_at_a_time);
    assert_eq!(t.precisions, vec![Precision::F16]);
    // What placement does with that: the registry's embedder and router may run at f16
    // (`also_at`), so on such a device they load at f16; an entry without it is refused.
    let reg = registry();
    for name in ["minilm-l6-v2", "router"] {
        let spec = reg.get(name).unwrap();
        assert_eq!(spec.precision_on(&t.precisions), Precision::F16, "{name}");
    }
    // The same static plan compiled by OpenVINO's CPU plugin (the NPU's settings, at the
    // precision the CPU computes): every bucket's inputs, read back from the compiled model,
    // are exactly [batch, seq], and the precision read back is the one asked for.
    let spec = reg.get("minilm-l6-v2").unwrap();
    let buckets = static_shapes::plan(spec).expect("an encoder has a static plan");
    let ov = OpenVinoBackend::new().expect("OpenVINO library (run scripts/setup.sh)");
    let session = ov
        .open_static(
            &spec.name,
            &spec.onnx,
            &DeviceRef::cpu(),
            Precision::F32,
            &buckets,
        )
        .unwrap();
    let compiled = session.compiled_input_shapes().unwrap();
    assert_eq!(compiled.len(), buckets.len());
    for (bucket, inputs) in compiled {
        assert_eq!(inputs.len(), 3, "{inputs:?}");
        for (name, dims) in inputs {
            assert_eq!(
                dims,
                vec![bucket.batch as i64, bucket.seq as i64],
                "{name} in bucket {bucket:?}"
            );
        }
    }
    let fixed = decoder::model_for(spec, Box::new(session)).unwrap();
    assert_eq!(
        fixed.precision(),
        Precision::F32,
        "read back from the compiled model"
    );
}

#[test]
fn the_npu_static_plan_gives_the_dynamic_embeddings_on_the_cpu() {
    let reg = registry();
    let spec = reg.get("minilm-l6-v2").unwrap();
    assert!(recorded_npu().static_shapes);
    let buckets = static_shapes::plan(spec).expect("an encoder has a static plan");
    let ov = OpenVinoBackend::new().expect("OpenVINO library (run scripts/setup.sh)");
    let cpu = DeviceRef::cpu();
    let session = ov
        .open_static(&spec.name, &spec.onnx, &cpu, Precision::F32, &buckets)
        .unwrap();
    assert_eq!(session.buckets(), buckets);
    let mut fixed = decoder::model_for(spec, Box::new(session)).unwrap();
    let mut dynamic = ov.load(spec, &cpu).unwrap();
    assert_eq!(fixed.precision(), Precision::F32);
    // One short sentence (bucket 1×32), three of mixed length (32×32), one long (1×128).
    let long = "word ".repeat(90);
    let calls = [
        strings(&["A man is eating food."]),
        strings(&[
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The stock market fell today.",
        ]),
        vec![long],
    ];
    for texts in calls {
        let a = fixed.embed(&texts).unwrap();
        let b = dynamic.embed(&texts).unwrap();
        assert_eq!(a.token_counts, b.token_counts);
        for (x, y) in a.vectors.iter().zip(&b.vectors) {
            assert!(
                cosine(x, y) > 0.9999,
                "padded static result differs: {}",
                cosine(x, y)
            );
        }
    }
}

#[test]
#[ignore = "needs Intel NPU"]
fn intel_npu_runs_embeddings_with_static_shapes_at_f16() {
    let reg = registry();
    let mut spec = reg.get("minilm-l6-v2").unwrap().clone();
    spec.precision = Precision::F16;
    let ov = OpenVinoBackend::new().unwrap();
    let npu = DeviceRef {
        id: "npu0".into(),
        device_type: DeviceType::IntelNpu,
        ordinal: 0,
    };
    let traits = ov.traits(&npu).unwrap();
    assert!(traits.static_shapes && traits.precisions.contains(&Precision::F16));
    let mut on_npu = ov.load(&spec, &npu).unwrap();
    assert_eq!(on_npu.precision(), Precision::F16);
    let mut on_cpu = ov
        .load(reg.get("minilm-l6-v2").unwrap(), &DeviceRef::cpu())
        .unwrap();
    let texts = strings(&["A man is eating food.", "The stock market fell today."]);
    let a = on_npu.embed(&texts).unwrap();
    let b = on_cpu.embed(&texts).unwrap();
    for (x, y) in a.vectors.iter().zip(&b.vectors) {
        assert!(cosine(x, y) > 0.99, "{}", cosine(x, y));
    }
    // A generator has no static plan: refused, not half-run.
    let err = ov
        .load(reg.get("smollm2-135m").unwrap(), &npu)
        .err()
        .unwrap();
    assert!(err.to_string().contains("static"), "{err}");
}
