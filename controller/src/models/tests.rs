use std::path::Path;

use switchyard_backend_core::registry::added::AddedEngine;

use super::*;

const SHIPPED: &str = r#"
[[model]]
name = "shipped-gguf"
stage = "generate"
max_input_tokens = 1536
context_tokens = 2048
engine = { kind = "llama_cpp", gguf = "nowhere/shipped.gguf", parallel = 1 }
"#;

fn base() -> ModelRegistry {
    ModelRegistry::parse(SHIPPED, Path::new("r.toml"), Path::new("/m")).unwrap()
}

fn added(name: &str) -> AddedModel {
    AddedModel {
        name: name.into(),
        stage: "generate".into(),
        tier: Some("code".into()),
        max_input_tokens: 1536,
        context_tokens: 2048,
        sha256: "ab".repeat(32),
        memory_bytes: 300 << 20,
        engine: AddedEngine {
            kind: "llama_cpp".into(),
            gguf: format!("/nowhere/{name}.gguf").into(),
            parallel: 2,
        },
        info: Default::default(),
    }
}

#[test]
fn an_added_model_is_kept_in_the_data_directory_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let set = ModelSet::open(base(), dir.path()).unwrap();
    let changes = set.subscribe();
    set.add(added("coder")).unwrap();
    assert!(changes.has_changed().unwrap(), "agents' sessions are told");
    let spec = set
        .snapshot()
        .get("coder")
        .cloned()
        .expect("placement sees it");
    assert_eq!(spec.memory_bytes, 300 << 20);
    assert!(set.is_added("coder") && !set.is_added("shipped-gguf"));

    let reopened = ModelSet::open(base(), dir.path()).unwrap();
    assert_eq!(reopened.added(), vec![added("coder")]);
    assert!(
        reopened.snapshot().get("shipped-gguf").is_some(),
        "seeded by the registry"
    );

    reopened.remove("coder").unwrap();
    let again = ModelSet::open(base(), dir.path()).unwrap();
    assert!(again.snapshot().get("coder").is_none());
    assert!(again.added().is_empty());
}

#[test]
fn refused_changes_say_why_and_leave_the_set_and_the_file_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let set = ModelSet::open(base(), dir.path())
        .unwrap()
        .with_routed(["routed".to_string()]);
    set.add(added("coder")).unwrap();
    set.add(added("routed")).unwrap();
    let on_disk = std::fs::read_to_string(dir.path().join(MODELS_FILE)).unwrap();
    let changes = set.subscribe();

    let bad_parallel = AddedModel {
        engine: AddedEngine {
            parallel: 0,
            ..added("x").engine
        },
        ..added("x")
    };
    for (result, expected) in [
        (
            set.add(added("coder")),
            ModelSetError::Exists("coder".into()),
        ),
        (
            set.add(added("shipped-gguf")),
            ModelSetError::Exists("shipped-gguf".into()),
        ),
        (
            set.remove("shipped-gguf"),
            ModelSetError::Shipped("shipped-gguf".into()),
        ),
        (set.remove("routed"), ModelSetError::Routed("routed".into())),
        (
            set.remove("nothing"),
            ModelSetError::NotFound("nothing".into()),
        ),
    ] {
        assert_eq!(result.unwrap_err(), expected);
    }
    let invalid = set.add(bad_parallel).unwrap_err();
    assert!(
        matches!(&invalid, ModelSetError::Invalid(m) if m.contains("parallel")),
        "{invalid:?}"
    );
    assert_eq!(invalid.status().code(), tonic::Code::InvalidArgument);
    assert!(matches!(
        set.add(AddedModel {
            name: "Bad Name".into(),
            ..added("x")
        }),
        Err(ModelSetError::Invalid(m)) if m.contains("model name")
    ));
    assert_eq!(
        set.remove("routed").unwrap_err().status().code(),
        tonic::Code::FailedPrecondition
    );
    assert_eq!(
        set.add(added("coder")).unwrap_err().status().code(),
        tonic::Code::AlreadyExists
    );

    assert!(!changes.has_changed().unwrap(), "nothing was published");
    assert_eq!(
        std::fs::read_to_string(dir.path().join(MODELS_FILE)).unwrap(),
        on_disk
    );
    assert_eq!(set.added().len(), 2);
}

#[test]
fn a_damaged_models_file_stops_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(MODELS_FILE), "[[model]]\nname = 3\n").unwrap();
    let err = ModelSet::open(base(), dir.path()).unwrap_err();
    assert!(err.to_string().contains(MODELS_FILE), "{err}");
}

#[test]
fn a_data_directory_that_cannot_be_made_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let err = ModelSet::open(base(), &file.join("data")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot create the data directory ")
            && err.to_string().contains("not-a-dir/data"),
        "{err}"
    );
}
