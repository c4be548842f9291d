//! The `Authorization` header (and the method and route) through the real axum router, with a
//! configured token and a store of scoped tokens. The first byte picks the route and method,
//! the rest is the header value. Invariants: no panic, no 5xx; without a valid token only
//! 401; a refusal is JSON in the route's error shape and never repeats a stored token or
//! its hash.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use libfuzzer_sys::fuzz_target;
use switchyard_api::ApiConfig;
use switchyard_api::credentials::{ApiTokenStore, Scope};
use switchyard_api::fake::Fake;
use switchyard_fuzz::call;

const ROUTES: [(&str, &str); 8] = [
    ("GET", "/v1/models"),
    ("POST", "/v1/embeddings"),
    ("POST", "/v1/documents"),
    ("DELETE", "/v1/documents/1"),
    ("POST", "/v1/documents/search"),
    ("GET", "/api/tags"),
    ("POST", "/api/generate"),
    ("POST", "/api/embed"),
];

/// A store with one infer token (its text, for the no-leak check), made once.
fn store() -> &'static (tempfile::TempDir, String, String) {
    static STORE: OnceLock<(tempfile::TempDir, String, String)> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ApiTokenStore::in_data_dir(dir.path());
        let (record, token) = store.create(Scope::Infer, None).expect("token");
        (dir, token, record.sha256)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, header)) = data.split_first() else {
        return;
    };
    let (method, route) = ROUTES[pick as usize % ROUTES.len()];
    let (dir, token, hash) = store();
    let cfg = ApiConfig {
        tokens: vec!["configured-fuzz-token".into()],
        token_store: Some(dir.path().join("api-tokens.json")),
        request_timeout_ms: 200,
        ..ApiConfig::default()
    };
    let router = switchyard_api::http_router(Arc::new(Fake::new()), cfg);
    let Ok(value) = http::HeaderValue::from_bytes(header) else {
        return; // not a header value the transport would deliver
    };
    let req = http::Request::builder()
        .method(method)
        .uri(route)
        .header("content-type", "application/json")
        .header("authorization", value)
        .body(Body::from("{}"))
        .expect("request");
    let answer = call(router, req);
    assert!(answer.status < 500, "{method} {route}: {} for {header:?}", answer.status);
    let text = String::from_utf8_lossy(&answer.body);
    assert!(!text.contains(token.as_str()) && !text.contains(hash.as_str()), "leak: {text}");
    let sent = String::from_utf8_lossy(header);
    let valid = sent.contains("configured-fuzz-token") || sent.contains(token.as_str());
    if !valid {
        assert_eq!(answer.status, 401, "{method} {route} without a valid token: {text}");
        let json: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON error");
        let message = if route.starts_with("/api/") {
            json["error"].as_str()
        } else {
            json["error"]["message"].as_str()
        };
        assert!(message.is_some_and(|m| !m.is_empty()), "{json}");
    }
});
