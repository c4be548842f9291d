//! Tests of the HTTP layer against the fake `Inference` (`tower::ServiceExt::oneshot`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use base64::Engine;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::http_router;
use crate::config::ApiConfig;
use crate::fake::{Fake, fake_vector};

pub(crate) fn app(cfg: ApiConfig) -> (Router, Arc<Fake>) {
    let fake = Arc::new(Fake::new());
    (http_router(fake.clone(), cfg), fake)
}

pub(crate) fn default_app() -> (Router, Arc<Fake>) {
    app(ApiConfig::default())
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts OpenAI's error shape and returns `error`.
    pub(crate) fn error(&self, status: StatusCode) -> Value {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        let v = self.json();
        let e = v["error"].clone();
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(e["type"].as_str().is_some(), "{v}");
        assert!(e.get("param").is_some() && e.get("code").is_some(), "{v}");
        e
    }
}

async fn send(router: &Router, req: Request<Body>) -> Reply {
    let resp = router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body")
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

pub(crate) async fn post(router: &Router, path: &str, body: Value) -> Reply {
    post_with(router, path, body, None).await
}

async fn post_with(router: &Router, path: &str, body: Value, token: Option<&str>) -> Reply {
    let mut b = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    send(router, b.body(Body::from(body.to_string())).unwrap()).await
}

async fn get(router: &Router, path: &str, token: Option<&str>) -> Reply {
    let mut b = Request::get(path);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    send(router, b.body(Body::empty()).unwrap()).await
}

/// The `data:` payloads of an SSE body.
fn sse_data(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8(body.to_vec()).expect("utf-8");
    assert!(
        text.ends_with("\n\n"),
        "events end with a blank line: {text:?}"
    );
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("event without data: {e:?}"))
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn models_list_has_openai_shape_placements_and_auto() {
    let (r, _) = default_app();
    let reply = get(&r, "/v1/models", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let v = reply.json();
    assert_eq!(v["object"], "list");
    let data = v["data"].as_array().unwrap();
    let ids: Vec<&str> = data.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["minilm", "smollm2", "router", "auto"]);
    for m in data {
        assert_eq!(m["object"], "model");
        assert_eq!(m["owned_by"], "switchyard");
        assert!(m["created"].as_u64().unwrap() > 1_600_000_000);
    }
    assert_eq!(data[0]["switchyard"]["stage"], "embed");
    assert_eq!(data[0]["switchyard"]["loaded_on"][0]["device"], "cpu0");
    assert_eq!(data[1]["switchyard"]["tier"], "fast");
    assert_eq!(data[2]["switchyard"]["stage"], "classify");
    assert_eq!(data[3]["switchyard"]["stage"], "generate");
}

#[tokio::test]
async fn embeddings_single_and_batch() {
    let (r, _) = default_app();
    let reply = post(
        &r,
        "/v1/embeddings",
        json!({"model": "minilm", "input": "hello world"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["x-switchyard-node"], "node-a");
    assert_eq!(reply.headers["x-switchyard-device"], "cpu0");
    assert_eq!(reply.headers["x-switchyard-backend"], "ort-cpu");
    assert_eq!(reply.headers["x-queue-time"], "0.250");
    assert_eq!(reply.headers["x-inference-time"], "1.500");
    assert!(reply.headers.contains_key("x-total-time"));
    let v = reply.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "minilm");
    assert_eq!(v["data"][0]["object"], "embedding");
    assert_eq!(v["data"][0]["index"], 0);
    let got: Vec<f32> = serde_json::from_value(v["data"][0]["embedding"].clone()).unwrap();
    assert_eq!(got, fake_vector("hello world"));
    // Each value is printed as the shortest decimal of its f32, not widened to f64 digits.
    let shortest = serde_json::to_string(&fake_vector("hello world")).unwrap();
    let text = String::from_utf8_lossy(&reply.body);
    assert!(text.contains(&shortest), "{shortest} in {text}");
    assert_eq!(v["usage"]["prompt_tokens"], 4);
    assert_eq!(v["usage"]["total_tokens"], 4);

    let reply = post(
        &r,
        "/v1/embeddings",
        json!({"model": "minilm", "input": ["a", "bb", "ccc"]}),
    )
    .await;
    let v = reply.json();
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    for (i, d) in data.iter().enumerate() {
        assert_eq!(d["index"], i);
    }
}

#[tokio::test]
async fn embeddings_base64_is_little_endian_f32() {
    let (r, _) = default_app();
    let v = post(
        &r,
        "/v1/embeddings",
        json!({"model": "minilm", "input": "xyz abc", "encoding_format": "base64"}),
    )
    .await
    .json();
    let b64 = v["data"][0]["embedding"].as_str().expect("base64 string");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let floats: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(floats, fake_vector("xyz abc"));

    let e = post(
        &r,
        "/v1/embeddings",
        json!({"model": "minilm", "input": "x", "encoding_format": "int8"}),
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    assert_eq!(e["param"], "encoding_format");
}

#[tokio::test]
async fn embeddings_bad_inputs_are_400_with_clear_messages() {
    let (r, _) = app(ApiConfig {
        max_inputs: 2,
        max_input_chars: 10,
        ..ApiConfig::default()
    });
    let e = post(
        &r,
        "/v1/embeddings",
        json!({"model": "minilm", "input": [1, 2, 3]}),
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    assert!(
        e["message"].as_str().unwrap().contains("token-array"),
        "{e}"
    );
    assert_eq!(e["param"], "input");
    let e = post(
        &r,
        "/v1/embeddings",
        json!({"model": "minilm", "input": ["a", "b", "c"]}),
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    assert!(
        e["message"].as_str().unwrap().contains("max_inputs (2)"),
        "{e}"
    );
    let e = post(
        &r,
        "/v1/embeddings",
        json!({"model": "minilm", "input": "x".repeat(11)}),
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("max_input_chars (10)"),
        "{e}"
    );
    let e = post(
        &r,
        "/v1/embeddings",
        json!({"model": "minilm", "input": []}),
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    assert!(
        e["message"].as_str().unwrap().contains("must not be empty"),
        "{e}"
    );
    let e = post(&r, "/v1/embeddings", json!({"input": "x"}))
        .await
        .error(StatusCode::BAD_REQUEST);
    assert_eq!(e["param"], "model");
    let e = post(
        &r,
        "/v1/embeddings",
        json!({"model": "minilm", "input": "x", "dimensions": 3}),
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    assert_eq!(e["param"], "dimensions");
}

#[tokio::test]
async fn unknown_model_is_404_model_not_found() {
    let (r, _) = default_app();
    let e = post(&r, "/v1/embeddings", json!({"model": "nope", "input": "x"}))
        .await
        .error(StatusCode::NOT_FOUND);
    assert_eq!(e["code"], "model_not_found");
    assert_eq!(e["param"], "model");
    assert_eq!(e["type"], "invalid_request_error");
    let e = post(
        &r,
        "/v1/chat/completions",
        json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .error(StatusCode::NOT_FOUND);
    assert_eq!(e["code"], "model_not_found");
}

#[tokio::test]
async fn axum_rejections_come_out_in_openai_shape() {
    let (r, _) = app(ApiConfig {
        max_body_bytes: 1000,
        ..ApiConfig::default()
    });
    let big = json!({"model": "minilm", "input": "x".repeat(2000)});
    let e = post(&r, "/v1/embeddings", big)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("max_body_bytes (1000 bytes)"),
        "{e}"
    );

    let req = Request::post("/v1/embeddings")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"model\": "))
        .unwrap();
    let e = send(&r, req).await.error(StatusCode::BAD_REQUEST);
    assert_eq!(e["code"], "invalid_json");

    let req = Request::post("/v1/embeddings")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("{}"))
        .unwrap();
    send(&r, req)
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let e = post(&r, "/v1/embeddings", json!([1, 2]))
        .await
        .error(StatusCode::BAD_REQUEST);
    assert!(
        e["message"].as_str().unwrap().contains("JSON object"),
        "{e}"
    );

    let e = get(&r, "/v1/nothing", None)
        .await
        .error(StatusCode::NOT_FOUND);
    assert_eq!(e["code"], "unknown_url");
    let e = get(&r, "/v1/embeddings", None)
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(e["code"], "method_not_allowed");
}

#[tokio::test]
async fn bearer_tokens_guard_v1_but_not_health() {
    let (r, _) = app(ApiConfig {
        tokens: vec!["t0k3n".into()],
        ..ApiConfig::default()
    });
    let reply = get(&r, "/v1/models", None).await;
    let e = reply.error(StatusCode::UNAUTHORIZED);
    assert_eq!(e["type"], "authentication_error");
    assert_eq!(e["code"], "invalid_api_key");
    assert_eq!(reply.headers[header::WWW_AUTHENTICATE], "Bearer");
    let reply = get(&r, "/v1/models", Some("wrong")).await;
    let e = reply.error(StatusCode::UNAUTHORIZED);
    assert!(!e["message"].as_str().unwrap().contains("t0k3n"));
    post(
        &r,
        "/v1/embeddings",
        json!({"model": "minilm", "input": "x"}),
    )
    .await
    .error(StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(&r, "/v1/models", Some("t0k3n")).await.status,
        StatusCode::OK
    );
    let ok = post_with(
        &r,
        "/v1/embeddings",
        json!({"model": "minilm", "input": "x"}),
        Some("t0k3n"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(get(&r, "/health", None).await.status, StatusCode::OK);
    assert_eq!(get(&r, "/ready", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn ready_follows_the_inference_side() {
    let (r, fake) = default_app();
    assert_eq!(get(&r, "/ready", None).await.json()["status"], "ready");
    fake.ready.store(false, std::sync::atomic::Ordering::SeqCst);
    get(&r, "/ready", None)
        .await
        .error(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get(&r, "/health", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn chat_non_stream_shape_usage_and_parameter_mapping() {
    let (r, fake) = default_app();
    let reply = post(
        &r,
        "/v1/chat/completions",
        json!({
            "model": "auto",
            "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "what is"}, {"type": "text", "text": " rust"}]}
            ],
            "temperature": 0.5, "top_p": 0.9, "max_tokens": 99, "max_completion_tokens": 8,
            "stop": "\n", "seed": 42, "presence_penalty": 0.1, "user": "someone"
        }),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.headers["x-switchyard-model"], "smollm2");
    let v = reply.json();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["model"], "smollm2", "auto resolves to the model that ran");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], "echo: what is rust");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 6);
    assert_eq!(v["usage"]["completion_tokens"], 4);
    assert_eq!(v["usage"]["total_tokens"], 10);
    assert_eq!(v["switchyard"]["trace"][0]["stage"], "generate");

    let seen = fake.seen.lock().unwrap().generate.clone().unwrap();
    assert_eq!(seen.model, "auto");
    assert_eq!(seen.messages[0].role, "system");
    assert_eq!(seen.messages[1].content, "what is rust");
    let s = seen.sampling.unwrap();
    assert_eq!(s.temperature, 0.5);
    assert_eq!(s.top_p, 0.9);
    assert_eq!(
        s.max_tokens, 8,
        "max_completion_tokens wins over max_tokens"
    );
    assert_eq!(s.stop, vec!["\n"]);
    assert_eq!(s.seed, Some(42));

    let v = post(
        &r,
        "/v1/chat/completions",
        json!({"model": "smollm2", "messages": [{"role": "user", "content": "a b c d e"}], "max_tokens": 2}),
    )
    .await
    .json();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["choices"][0]["message"]["content"], "echo: a");
}

#[tokio::test]
async fn chat_validation_names_the_field() {
    let (r, _) = app(ApiConfig {
        max_tokens: 100,
        ..ApiConfig::default()
    });
    let user = json!([{"role": "user", "content": "hi"}]);
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"model": "auto", "messages": user, "temperature": 2.5}),
            "temperature",
            "between 0 and 2",
        ),
        (
            json!({"model": "auto", "messages": user, "temperature": "hot"}),
            "temperature",
            "must be a number",
        ),
        (
            json!({"model": "auto", "messages": user, "top_p": 0}),
            "top_p",
            "(0, 1]",
        ),
        (
            json!({"model": "auto", "messages": user, "max_tokens": 0}),
            "max_tokens",
            "at least 1",
        ),
        (
            json!({"model": "auto", "messages": user, "max_tokens": 101}),
            "max_tokens",
            "max_tokens (100)",
        ),
        (
            json!({"model": "auto", "messages": []}),
            "messages",
            "must not be empty",
        ),
        (json!({"model": "auto"}), "messages", "required"),
        (
            json!({"model": "auto", "messages": [{"role": "tool", "content": "x"}]}),
            "messages",
            "'tool'",
        ),
        (
            json!({"model": "auto", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
            "messages",
            "'image_url'",
        ),
        (
            json!({"model": "auto", "messages": user, "n": 2}),
            "n",
            "n must be 1",
        ),
        (
            json!({"model": "auto", "messages": user, "stop": ["a", 1]}),
            "stop",
            "stop[1]",
        ),
        (
            json!({"model": "auto", "messages": user, "tools": [{"type": "function"}]}),
            "tools",
            "tools[0].function must be an object",
        ),
        (
            json!({"model": "auto", "messages": user, "response_format": {"type": "json_schema"}}),
            "response_format",
            "json_schema must be an object",
        ),
        (
            json!({"model": "auto", "messages": user, "stream": "yes"}),
            "stream",
            "boolean",
        ),
        (
            json!({"model": "auto", "messages": user, "seed": -1}),
            "seed",
            "non-negative",
        ),
    ];
    for (body, param, needle) in cases {
        let e = post(&r, "/v1/chat/completions", body.clone())
            .await
            .error(StatusCode::BAD_REQUEST);
        assert_eq!(e["param"], param, "{body} → {e}");
        assert!(
            e["message"].as_str().unwrap().contains(needle),
            "{body} → {e}"
        );
    }
    // Values that ask for nothing are accepted (more in chat/accepted/tests.rs).
    let ok = post(
        &r,
        "/v1/chat/completions",
        json!({"model": "auto", "messages": user, "tools": [], "frequency_penalty": 0, "metadata": {"a": "b"}}),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn chat_stream_sse_framing_with_usage() {
    let (r, _) = default_app();
    let reply = post(
        &r,
        "/v1/chat/completions",
        json!({"model": "auto", "messages": [{"role": "user", "content": "one two three"}],
               "stream": true, "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let data = sse_data(&reply.body);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let id = chunks[0]["id"].clone();
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], id, "one id for every chunk");
        assert!(
            c.get("usage").is_some(),
            "include_usage puts usage on every chunk"
        );
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 4);
    assert_eq!(usage_chunk["usage"]["total_tokens"], 10);
    let fin = &chunks[chunks.len() - 2];
    assert_eq!(fin["choices"][0]["finish_reason"], "stop");
    assert_eq!(fin["usage"], Value::Null);
    assert_eq!(fin["model"], "smollm2");
    assert_eq!(fin["switchyard"]["trace"][0]["node"], "node-a");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "echo: one two three");
    for c in &chunks[..chunks.len() - 2] {
        assert_eq!(c["choices"][0]["finish_reason"], Value::Null);
    }
}

#[tokio::test]
async fn chat_stream_without_usage_and_with_failure() {
    let (r, _) = default_app();
    let reply = post(
        &r,
        "/v1/chat/completions",
        json!({"model": "smollm2", "messages": [{"role": "user", "content": "x"}], "stream": true}),
    )
    .await;
    let data = sse_data(&reply.body);
    assert_eq!(data.last().unwrap(), "[DONE]");
    for d in &data[..data.len() - 1] {
        let c: Value = serde_json::from_str(d).unwrap();
        assert!(c.get("usage").is_none(), "{c}");
        assert_eq!(c["choices"].as_array().unwrap().len(), 1);
    }

    // A failure after the first chunk: an error event, and no [DONE].
    let reply = post(
        &r,
        "/v1/chat/completions",
        json!({"model": "broken", "messages": [{"role": "user", "content": "x y"}], "stream": true}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let data = sse_data(&reply.body);
    assert_ne!(data.last().unwrap(), "[DONE]");
    let err: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(err["error"]["type"], "server_error");
    assert_eq!(err["error"]["message"], "device lost");

    // A failure before the first chunk keeps its HTTP status.
    post(
        &r,
        "/v1/chat/completions",
        json!({"model": "full", "messages": [{"role": "user", "content": "x"}], "stream": true}),
    )
    .await
    .error(StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn queue_full_is_429_and_deadline_is_504() {
    let (r, fake) = app(ApiConfig {
        request_timeout_ms: 60,
        ..ApiConfig::default()
    });
    let e = post(&r, "/v1/embeddings", json!({"model": "full", "input": "x"}))
        .await
        .error(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(e["type"], "rate_limit_error");
    let started = std::time::Instant::now();
    let e = post(&r, "/v1/embeddings", json!({"model": "slow", "input": "x"}))
        .await
        .error(StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("request_timeout 60 ms"),
        "{e}"
    );
    let budget = fake.seen.lock().unwrap().budget.unwrap();
    assert!(budget <= Duration::from_millis(60), "{budget:?}");
}

#[tokio::test]
async fn completions_non_stream_and_stream() {
    let (r, fake) = default_app();
    let v = post(
        &r,
        "/v1/completions",
        json!({"model": "smollm2", "prompt": "the sky", "max_tokens": 5}),
    )
    .await
    .json();
    assert_eq!(v["object"], "text_completion");
    assert!(v["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(v["choices"][0]["text"], "echo: the sky");
    assert_eq!(v["usage"]["completion_tokens"], 3);
    let seen = fake.seen.lock().unwrap().generate.clone().unwrap();
    assert_eq!(seen.messages[0].content, "the sky");

    let reply = post(
        &r,
        "/v1/completions",
        json!({"model": "smollm2", "prompt": ["the sky"], "stream": true}),
    )
    .await;
    let data = sse_data(&reply.body);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let text: String = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .inspect(|c| assert_eq!(c["object"], "text_completion"))
        .filter_map(|c| c["choices"][0]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, "echo: the sky");

    let e = post(
        &r,
        "/v1/completions",
        json!({"model": "smollm2", "prompt": ["a", "b"]}),
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    assert_eq!(e["param"], "prompt");
}

#[tokio::test]
async fn documents_and_pipeline() {
    let (r, fake) = default_app();
    let v = post(&r, "/v1/documents", json!({"documents": ["a", "b"]}))
        .await
        .json();
    assert_eq!(v["ids"], json!([100, 101]));
    let e = post(&r, "/v1/documents", json!({"documents": "a"}))
        .await
        .error(StatusCode::BAD_REQUEST);
    assert_eq!(e["param"], "documents");

    let reply = post(
        &r,
        "/v1/pipeline",
        json!({"prompt": "why", "retrieve": true, "top_k": 2, "max_tokens": 9, "temperature": 0.2}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.headers["x-inference-time"], "4.500",
        "three stages of 1.5 ms"
    );
    let v = reply.json();
    assert_eq!(v["tier"], "fast");
    assert_eq!(v["model"], "smollm2");
    assert_eq!(v["text"], "answer to why");
    assert_eq!(v["context_documents"], json!(["a document"]));
    assert_eq!(v["retrieved"][0]["document_id"], 100);
    assert_eq!(v["retrieved"][0]["source"], "a.md");
    assert_eq!(v["trace"][1]["retrieved"][0]["score"], 0.5);
    let stages: Vec<&str> = v["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["classify", "embed", "generate"]);
    assert_eq!(v["usage"]["total_tokens"], 10);
    let seen = fake.seen.lock().unwrap().pipeline.clone().unwrap();
    assert!(seen.retrieve);
    assert_eq!(seen.top_k, 2);
    assert_eq!(seen.sampling.unwrap().max_tokens, 9);

    let v = post(
        &r,
        "/v1/pipeline",
        json!({"prompt": "why", "explain": true}),
    )
    .await
    .json();
    let cands = v["explanation"][0]["candidates"].as_array().unwrap();
    assert_eq!(cands[0]["eligible"], true);
    assert_eq!(cands[1]["eligible"], false);
    assert_eq!(cands[1]["filtered_reason"], "node lost");

    let e = post(&r, "/v1/pipeline", json!({"prompt": "  "}))
        .await
        .error(StatusCode::BAD_REQUEST);
    assert_eq!(e["param"], "prompt");
}

#[tokio::test]
async fn documents_are_added_listed_fetched_searched_and_deleted() {
    let (r, _) = default_app();
    let v = post(
        &r,
        "/v1/documents",
        json!({"collection": "notes", "documents": [
            {"text": "aaaa bbbb", "source": "a.md"},
            "zzzz yyyy",
        ]}),
    )
    .await
    .json();
    assert_eq!(v["ids"], json!([100, 101]));
    assert_eq!(v["data"][0]["source"], "a.md");
    assert_eq!(v["data"][0]["status"], "added");
    assert_eq!(v["data"][1]["collection"], "notes");

    let v = get(&r, "/v1/documents?collection=notes", None).await.json();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let e = get(&r, "/v1/documents?colection=notes", None)
        .await
        .error(StatusCode::BAD_REQUEST);
    assert!(e["message"].as_str().unwrap().contains("colection"), "{e}");
    let e = get(&r, "/v1/documents?collection=nope", None)
        .await
        .error(StatusCode::NOT_FOUND);
    assert!(e["message"].as_str().unwrap().contains("nope"), "{e}");

    let v = get(&r, "/v1/documents/100", None).await.json();
    assert_eq!(v["text"], "aaaa bbbb");
    get(&r, "/v1/documents/999", None)
        .await
        .error(StatusCode::NOT_FOUND);
    let e = get(&r, "/v1/documents/abc", None)
        .await
        .error(StatusCode::BAD_REQUEST);
    assert_eq!(e["param"], "id");

    let reply = post(
        &r,
        "/v1/documents/search",
        json!({"query": "zzzz", "k": 1, "collection": "notes"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.headers.contains_key("x-switchyard-node"));
    let v = reply.json();
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        v["data"][0]["document_id"], 101,
        "the closest by the fake's vectors"
    );
    assert_eq!(v["trace"][0]["retrieved"][0]["document_id"], 101);

    let reply = send(
        &r,
        Request::delete("/v1/documents/100")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.json()["deleted"], true);
    let reply = send(
        &r,
        Request::delete("/v1/documents/100")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    reply.error(StatusCode::NOT_FOUND);
    let reply = send(
        &r,
        Request::delete("/v1/documents?collection=notes")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.json()["documents"], 1);
}

#[tokio::test]
async fn bad_document_requests_name_the_field() {
    let (r, _) = default_app();
    for (body, param) in [
        (json!({"documents": []}), "documents"),
        (json!({"documents": ["  "]}), "documents"),
        (json!({"documents": [3]}), "documents"),
        (json!({"documents": [{"txt": "a"}]}), "documents"),
        (
            json!({"documents": ["a"], "collection": "no spaces"}),
            "collection",
        ),
        (json!({"documents": ["a"], "extra": 1}), "extra"),
    ] {
        let e = post(&r, "/v1/documents", body.clone())
            .await
            .error(StatusCode::BAD_REQUEST);
        assert_eq!(e["param"], param, "{body}: {e}");
    }
    for (body, param) in [
        (json!({"query": ""}), "query"),
        (json!({"query": "q", "k": 100000}), "k"),
        (json!({"query": "q", "min_score": 2}), "min_score"),
        (json!({"query": "q", "top": 2}), "top"),
    ] {
        let e = post(&r, "/v1/documents/search", body.clone())
            .await
            .error(StatusCode::BAD_REQUEST);
        assert_eq!(e["param"], param, "{body}: {e}");
    }
    let e = post(&r, "/v1/pipeline", json!({"prompt": "q", "min_score": -3}))
        .await
        .error(StatusCode::BAD_REQUEST);
    assert_eq!(e["param"], "min_score");
}
