//! Tests of the Ollama routes against the fake `Inference`: shapes, NDJSON framing, options,
//! refusals, keep-alive, errors. The same routes against a real system are tested with the
//! official `ollama` client in tests/python/test_ollama_api.py. Generation routes: generation.rs.

mod generation;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::config::ApiConfig;
use crate::fake::{Fake, fake_vector};
use crate::http::http_router;

pub(super) fn app() -> (Router, Arc<Fake>) {
    let fake = Arc::new(Fake::new());
    (http_router(fake.clone(), ApiConfig::default()), fake)
}

pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) content_type: String,
    pub(super) body: String,
}

impl Reply {
    pub(super) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// Asserts Ollama's error shape `{"error": "..."}` and returns the message.
    pub(super) fn error(&self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        let v = self.json();
        assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");
        v["error"].as_str().expect("error string").to_string()
    }

    /// The NDJSON lines, parsed.
    pub(super) fn lines(&self) -> Vec<Value> {
        self.body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("line not JSON ({e}): {l}")))
            .collect()
    }
}

pub(super) async fn send(router: &Router, req: Request<Body>) -> Reply {
    let resp = router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    Reply {
        status,
        content_type,
        body: String::from_utf8(bytes.to_vec()).expect("utf-8"),
    }
}

pub(super) async fn post(router: &Router, path: &str, body: Value) -> Reply {
    let req = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    send(router, req).await
}

pub(super) async fn get(router: &Router, path: &str) -> Reply {
    send(router, Request::get(path).body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn version_is_open_and_the_rest_needs_the_token_in_ollama_shape() {
    let fake = Arc::new(Fake::new());
    let cfg = ApiConfig {
        tokens: vec!["t".into()],
        ..ApiConfig::default()
    };
    let router = http_router(fake, cfg);
    let v = get(&router, "/api/version").await;
    assert_eq!(v.status, StatusCode::OK);
    assert!(v.json()["version"].as_str().is_some_and(|s| !s.is_empty()));
    let m = get(&router, "/api/tags")
        .await
        .error(StatusCode::UNAUTHORIZED);
    assert!(m.contains("Authorization"), "{m}");
    let ok = Request::get("/api/tags")
        .header(header::AUTHORIZATION, "Bearer t")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&router, ok).await.status, StatusCode::OK);
}

#[tokio::test]
async fn tags_list_generation_and_embedding_models_with_tags_and_auto() {
    let (router, _) = app();
    let r = get(&router, "/api/tags").await;
    assert_eq!(r.status, StatusCode::OK);
    let names: Vec<String> = r.json()["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        vec!["minilm:latest", "smollm2:latest", "auto:latest"],
        "the classifier is not an Ollama model"
    );
    let m = &r.json()["models"][1];
    assert_eq!(m["model"], "smollm2:latest");
    assert_eq!(m["size"], 270_000_000);
    assert!(m["details"]["format"].is_string());
}

#[tokio::test]
async fn ps_lists_loaded_models_with_vram_and_expiry() {
    let (router, _) = app();
    let r = get(&router, "/api/ps").await;
    let models = r.json()["models"].as_array().unwrap().clone();
    // The fake has minilm loaded on cpu0 and nothing else.
    assert_eq!(models.len(), 1, "{models:?}");
    assert_eq!(models[0]["name"], "minilm:latest");
    assert_eq!(models[0]["size_vram"], 0, "loaded on a CPU");
    assert_eq!(models[0]["size"], 23_000_000);
    let expires = models[0]["expires_at"].as_str().unwrap();
    assert!(expires.parse::<jiff::Timestamp>().is_ok(), "{expires}");
}

#[tokio::test]
async fn show_gives_capabilities_and_404_for_an_unknown_model() {
    let (router, _) = app();
    let r = post(&router, "/api/show", json!({"model": "minilm:latest"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["capabilities"], json!(["embedding"]));
    let r = post(&router, "/api/show", json!({"name": "smollm2"})).await;
    assert_eq!(r.json()["capabilities"], json!(["completion"]));
    let m = post(&router, "/api/show", json!({"model": "nope"}))
        .await
        .error(StatusCode::NOT_FOUND);
    assert!(m.contains("nope"), "{m}");
}

#[tokio::test]
async fn embed_and_legacy_embeddings() {
    let (router, _) = app();
    let r = post(
        &router,
        "/api/embed",
        json!({"model": "minilm", "input": ["cat", "dog"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let v = r.json();
    let want: Vec<Vec<f32>> = ["cat", "dog"].iter().map(|t| fake_vector(t)).collect();
    let got: Vec<Vec<f32>> = serde_json::from_value(v["embeddings"].clone()).unwrap();
    assert_eq!(got, want);
    // Printed as the shortest decimal of each f32 (Ollama's float32 vectors), not as f64.
    let shortest = serde_json::to_string(&want).unwrap();
    assert!(r.body.contains(&shortest), "{shortest} in {}", r.body);
    assert!(v["prompt_eval_count"].as_u64().unwrap() > 0);
    let r = post(
        &router,
        "/api/embeddings",
        json!({"model": "minilm:latest", "prompt": "cat"}),
    )
    .await;
    assert_eq!(r.json()["embedding"], json!(fake_vector("cat")));
    for (body, field) in [
        (
            json!({"model": "minilm", "input": "x", "truncate": false}),
            "truncate",
        ),
        (
            json!({"model": "minilm", "input": "x", "options": {"temperature": 1}}),
            "options.temperature",
        ),
        (
            json!({"model": "minilm", "input": "x", "dimensions": 3}),
            "dimensions",
        ),
    ] {
        let m = post(&router, "/api/embed", body)
            .await
            .error(StatusCode::BAD_REQUEST);
        assert!(m.contains(field), "{m}");
    }
    post(
        &router,
        "/api/embed",
        json!({"model": "nope", "input": "x"}),
    )
    .await
    .error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn any_content_type_is_read_and_bad_bodies_and_routes_answer_in_ollama_shape() {
    let (router, _) = app();
    let req = Request::post("/api/generate")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(
            json!({"model": "smollm2", "prompt": "hi", "stream": false}).to_string(),
        ))
        .unwrap();
    assert_eq!(send(&router, req).await.status, StatusCode::OK);
    let req = Request::post("/api/chat")
        .body(Body::from("{not json"))
        .unwrap();
    let m = send(&router, req).await.error(StatusCode::BAD_REQUEST);
    assert!(m.contains("not valid JSON"), "{m}");
    let m = get(&router, "/api/pull").await.error(StatusCode::NOT_FOUND);
    assert!(m.contains("/api/pull"), "{m}");
    get(&router, "/api/chat")
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED);
}
