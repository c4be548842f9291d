use super::*;

const ENGINE: &str = r#"
[[model]]
name = "smol-gguf"
stage = "generate"
max_input_tokens = 1536
context_tokens = 2048
engine = { kind = "llama_cpp", gguf = "smollm2-135m-gguf/SmolLM2-135M-Instruct.Q4_1.gguf", parallel = 4 }
"#;

#[test]
fn an_engine_entry_gets_its_memory_and_facts_from_the_gguf_header() {
    let dir = crate::paths::models_dir();
    let reg = ModelRegistry::parse(ENGINE, Path::new("r.toml"), &dir).unwrap();
    let spec = reg.get("smol-gguf").unwrap();
    let engine = spec.engine.as_ref().unwrap();
    assert!(
        engine.gguf.is_file(),
        "{} is missing: run scripts/setup.sh",
        engine.gguf.display()
    );
    let info = crate::gguf::GgufInfo::read(&engine.gguf).unwrap();
    assert_eq!(spec.memory_bytes, info.estimate(2048, 4).total());
    assert_eq!(spec.backends, vec!["llama_cpp".to_string()]);
    assert_eq!(spec.info["quantization"], "Q4_1");
    assert_eq!(reg.available(), vec!["smol-gguf".to_string()]);
}

#[test]
fn an_engine_entry_without_its_file_is_kept_but_not_available() {
    let reg = ModelRegistry::parse(ENGINE, Path::new("r.toml"), Path::new("/nowhere")).unwrap();
    assert_eq!(reg.get("smol-gguf").unwrap().memory_bytes, 0);
    assert!(reg.available().is_empty());
}

#[test]
fn inconsistent_engine_entries_are_refused_by_name() {
    for (from, to, says) in [
        (
            "stage = \"generate\"",
            "stage = \"embed\"",
            "generate models only",
        ),
        (
            "max_input_tokens",
            "onnx = \"x.onnx\"\nmax_input_tokens",
            "not onnx",
        ),
        ("parallel = 4", "parallel = 0", "parallel ≥ 1"),
        (
            "max_input_tokens",
            "backends = [\"openvino\"]\nmax_input_tokens",
            "llama_cpp only",
        ),
        ("llama_cpp", "vllm", "vllm"),
    ] {
        let text = ENGINE.replace(from, to);
        let err = ModelRegistry::parse(&text, Path::new("r.toml"), Path::new("/m"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{to}: {err}");
    }
    let bad = tempfile::tempdir().unwrap();
    let gguf = bad.path().join("smollm2-135m-gguf");
    std::fs::create_dir_all(&gguf).unwrap();
    std::fs::write(gguf.join("SmolLM2-135M-Instruct.Q4_1.gguf"), b"not a gguf").unwrap();
    let err = ModelRegistry::parse(ENGINE, Path::new("r.toml"), bad.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("smol-gguf") && err.contains("is not a GGUF file"),
        "{err}"
    );
}

#[test]
fn a_chat_template_resolves_beside_the_registry_file_and_a_missing_one_is_refused() {
    let repo_models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let text = ENGINE.replace(
        "parallel = 4 }",
        "parallel = 4, chat_template = \"smollm2-135m-gguf/chatml-tools.jinja\" }",
    );
    let reg =
        ModelRegistry::parse(&text, &repo_models.join("registry.toml"), Path::new("/m")).unwrap();
    let template = reg.get("smol-gguf").unwrap().engine.as_ref().unwrap();
    let template = template.chat_template.as_ref().unwrap();
    assert!(template.is_file(), "{}", template.display());
    assert!(
        std::fs::read_to_string(template)
            .unwrap()
            .contains("<tool_call>")
    );
    let err = ModelRegistry::parse(
        &text,
        Path::new("/elsewhere/registry.toml"),
        Path::new("/m"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("chat_template /elsewhere/smollm2-135m-gguf/chatml-tools.jinja is not a file"),
        "{err}"
    );
}
