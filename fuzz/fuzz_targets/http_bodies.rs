//! The OpenAI and Ollama JSON bodies through the real axum router (over the unit tests'
//! fake pipeline). The first byte picks the route, the rest is the body. Invariants: no
//! panic, no hang, no 5xx but the fake's own, and every error is JSON in the route's error
//! shape (OpenAI `{"error":{"message":…}}`, Ollama `{"error":"…"}`).
#![no_main]

use std::sync::Arc;

use axum::body::Body;
use libfuzzer_sys::fuzz_target;
use switchyard_api::ApiConfig;
use switchyard_api::fake::Fake;
use switchyard_fuzz::call;

const ROUTES: [&str; 11] = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/documents",
    "/v1/documents/search",
    "/v1/pipeline",
    "/api/chat",
    "/api/generate",
    "/api/embed",
    "/api/embeddings",
    "/api/show",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let route = ROUTES[pick as usize % ROUTES.len()];
    let cfg = ApiConfig {
        request_timeout_ms: 200,
        max_tokens: 64,
        ..ApiConfig::default()
    };
    let router = switchyard_api::http_router(Arc::new(Fake::new()), cfg);
    let req = http::Request::builder()
        .method("POST")
        .uri(route)
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .expect("request");
    let answer = call(router, req);
    if answer.status < 400 {
        return;
    }
    // The fake's own failures (`full`, `slow`, `broken` models) are 429, 504 and 500s of a
    // named class; anything else must be the client's fault.
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_else(|e| {
        panic!(
            "{route} answered {} with a body that is not JSON ({e}): {:?}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        )
    });
    let message = if route.starts_with("/api/") {
        json["error"].as_str()
    } else {
        json["error"]["message"].as_str()
    };
    assert!(
        message.is_some_and(|m| !m.is_empty()),
        "{route} {}: error without a message: {json}",
        answer.status
    );
    if answer.status >= 500 {
        let text = message.unwrap_or_default();
        assert!(
            !text.contains("internal error while serving"),
            "{route}: a handler panicked: {json}"
        );
    }
});
