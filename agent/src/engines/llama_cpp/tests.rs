use super::*;

#[test]
fn a_configured_server_that_is_missing_is_named() {
    let s = LlamaCppSettings {
        server: Some("/nowhere/llama-server".into()),
        threads: None,
    };
    let err = locate(&s).unwrap_err();
    assert!(
        err.contains("/nowhere/llama-server") && err.contains("[engines.llama_cpp]"),
        "{err}"
    );
}
