use super::process::rss_bytes;
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

#[test]
fn rss_is_read_from_proc() {
    let rss = rss_bytes(std::process::id()).unwrap();
    assert!(rss > 0);
    assert!(rss_bytes(u32::MAX).is_none());
}
