use super::*;

const GOOD: &str = r#"
[[model]]
name = "minilm"
stage = "embed"
onnx = "minilm/model.onnx"
tokenizer = "minilm/tokenizer.json"
memory_bytes = 100
max_input_tokens = 128

[[model]]
name = "router"
stage = "classify"
onnx = "router/model.onnx"
tokenizer = "minilm/tokenizer.json"
memory_bytes = 100
max_input_tokens = 128
labels = ["fast", "code", "heavy"]
"#;

#[test]
fn parses_and_resolves_paths() {
    let reg = ModelRegistry::parse(GOOD, Path::new("r.toml"), Path::new("/m")).unwrap();
    assert_eq!(reg.len(), 2);
    let router = reg.get("router").unwrap();
    assert_eq!(router.stage, StageKind::Classify);
    assert_eq!(router.onnx, Path::new("/m/router/model.onnx"));
    assert_eq!(router.overflow, OverflowPolicy::Truncate);
    assert_eq!(router.max_batch, 32);
    assert_eq!(
        router.precision,
        Precision::F32,
        "f32 unless the entry says otherwise"
    );
}

#[test]
fn precision_is_read_and_unknown_precisions_are_refused() {
    let text = GOOD.replace(
        "max_input_tokens = 128\n\n",
        "max_input_tokens = 128\nprecision = \"bf16\"\n\n",
    );
    let reg = ModelRegistry::parse(&text, Path::new("r.toml"), Path::new("/m")).unwrap();
    assert_eq!(reg.get("minilm").unwrap().precision, Precision::Bf16);
    let bad = GOOD.replace(
        "max_input_tokens = 128\n\n",
        "max_input_tokens = 128\nprecision = \"int3\"\n\n",
    );
    let err = ModelRegistry::parse(&bad, Path::new("r.toml"), Path::new("/m")).unwrap_err();
    assert!(err.to_string().contains("int3"), "{err}");
}

#[test]
fn streams_is_read_and_zero_too_many_or_on_a_generate_model_is_refused() {
    let with = |line: &str| {
        GOOD.replace(
            "max_input_tokens = 128\n\n",
            &format!("max_input_tokens = 128\n{line}\n\n"),
        )
    };
    let parse = |text: &str| ModelRegistry::parse(text, Path::new("r.toml"), Path::new("/m"));
    let reg = parse(GOOD).unwrap();
    assert_eq!(reg.get("minilm").unwrap().streams, None, "auto by default");
    let reg = parse(&with("streams = 3")).unwrap();
    assert_eq!(reg.get("minilm").unwrap().streams, Some(3));
    let err = parse(&with("streams = 0")).unwrap_err();
    assert!(err.to_string().contains("streams must be > 0"), "{err}");
    let err = parse(&with("streams = 65")).unwrap_err();
    assert!(err.to_string().contains("more than 64"), "{err}");
    let generate = with("streams = 2").replacen(
        "stage = \"embed\"",
        "stage = \"generate\"\ncontext_tokens = 512",
        1,
    );
    let err = parse(&generate).unwrap_err();
    assert!(
        err.to_string()
            .contains("streams applies to classify and embed models only"),
        "{err}"
    );
}

#[test]
fn rejects_unknown_key_with_its_name() {
    let text = GOOD.replace(
        "max_input_tokens = 128\n\n",
        "max_input_tokens = 128\nbogus = 1\n\n",
    );
    let err = ModelRegistry::parse(&text, Path::new("r.toml"), Path::new("/m")).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("bogus"), "{msg}");
    assert!(msg.contains("r.toml"), "{msg}");
}

#[test]
fn rejects_classifier_without_labels_and_duplicates() {
    let text = GOOD.replace("labels = [\"fast\", \"code\", \"heavy\"]", "");
    let err = ModelRegistry::parse(&text, Path::new("r.toml"), Path::new("/m")).unwrap_err();
    assert!(err.to_string().contains("at least two labels"), "{err}");

    let dup = format!(
        "{GOOD}\n{}",
        &GOOD[..GOOD.find("[[model]]\nname = \"router\"").unwrap()]
    );
    let err = ModelRegistry::parse(&dup, Path::new("r.toml"), Path::new("/m")).unwrap_err();
    assert!(err.to_string().contains("registered twice"), "{err}");
}

#[test]
fn a_model_loads_at_its_precision_else_at_the_first_other_the_device_has() {
    let mut spec = ModelRegistry::parse(
        "[[model]]\nname = \"e\"\nstage = \"embed\"\nonnx = \"e.onnx\"\ntokenizer = \"t.json\"\nmemory_bytes = 1\nmax_input_tokens = 8\nalso_at = [\"f16\"]\n",
        std::path::Path::new("reg.toml"),
        std::path::Path::new("/models"),
    )
    .unwrap()
    .get("e")
    .unwrap()
    .clone();
    assert_eq!(spec.precisions(), [Precision::F32, Precision::F16]);
    assert_eq!(
        spec.precision_on(&[Precision::F32, Precision::Bf16]),
        Precision::F32
    );
    assert_eq!(
        spec.precision_on(&[Precision::F16]),
        Precision::F16,
        "an NPU"
    );
    assert_eq!(spec.precision_on(&[]), Precision::F32, "unknown: its own");
    spec.also_at.clear();
    assert_eq!(
        spec.precision_on(&[Precision::F16]),
        Precision::F32,
        "no f16 allowed: refused later"
    );
}
