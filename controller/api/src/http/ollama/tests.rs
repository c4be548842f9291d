//! Tests of the Ollama routes against the fake `Inference`: shapes, NDJSON framing, options,
//! refusals, keep-alive, errors. The same routes against a real system are tested with the
//! official `ollama` client in tests/python/test_ollama_api.py.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::config::ApiConfig;
use crate::fake::{Fake, fake_vector};
use crate::http::http_router;
use crate::inference::KeepAlive;

fn app() -> (Router, Arc<Fake>) {
    let fake = Arc::new(Fake::new());
    (http_router(fake.clone(), ApiConfig::default()), fake)
}

struct Reply {
    status: StatusCode,
    content_type: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// Asserts Ollama's error shape `{"error": "..."}` and returns the message.
    fn error(&self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        let v = self.json();
        assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");
        v["error"].as_str().expect("error string").to_string()
    }

    /// The NDJSON lines, parsed.
    fn lines(&self) -> Vec<Value> {
        self.body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("line not JSON ({e}): {l}")))
            .collect()
    }
}

async fn send(router: &Router, req: Request<Body>) -> Reply {
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

async fn post(router: &Router, path: &str, body: Value) -> Reply {
    let req = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    send(router, req).await
}

async fn get(router: &Router, path: &str) -> Reply {
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
async fn chat_streams_ndjson_ending_with_done_and_counts() {
    let (router, _) = app();
    let r = post(
        &router,
        "/api/chat",
        json!({"model": "smollm2", "messages": [{"role": "user", "content": "one two"}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.content_type, "application/x-ndjson");
    let lines = r.lines();
    let (last, pieces) = lines.split_last().unwrap();
    assert!(pieces.iter().all(|l| l["done"] == false));
    let text: String = pieces
        .iter()
        .map(|l| l["message"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, "echo: one two");
    assert_eq!(last["done"], true);
    assert_eq!(last["done_reason"], "stop");
    assert_eq!(last["message"]["content"], "");
    assert_eq!(last["eval_count"], 3);
    assert_eq!(last["prompt_eval_count"], 5);
    assert_eq!(last["model"], "smollm2");
    let total = last["total_duration"].as_u64().unwrap();
    for k in ["load_duration", "prompt_eval_duration", "eval_duration"] {
        assert!(last[k].as_u64().is_some_and(|d| d <= total), "{k}: {last}");
    }
    assert!(
        last["created_at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok()
    );
}

#[tokio::test]
async fn chat_without_stream_is_one_object() {
    let (router, _) = app();
    let r = post(
        &router,
        "/api/chat",
        json!({"model": "auto:latest", "stream": false,
               "messages": [{"role": "user", "content": "a b c"}], "options": {"num_predict": 2}}),
    )
    .await;
    let v = r.json();
    assert_eq!(v["message"]["content"], "echo: a");
    assert_eq!(v["done_reason"], "length");
    assert_eq!(
        v["model"], "smollm2:latest",
        "auto answers with the model that ran"
    );
}

#[tokio::test]
async fn generate_maps_system_prompt_and_options() {
    let (router, fake) = app();
    let r = post(
        &router,
        "/api/generate",
        json!({"model": "smollm2", "prompt": "hello there", "system": "be brief", "stream": false,
               "options": {"temperature": 0, "top_p": 0.5, "top_k": 5, "num_predict": 7,
                           "stop": ["\n"], "seed": 3, "repeat_penalty": 1.3, "repeat_last_n": 8,
                           "presence_penalty": 0.5, "frequency_penalty": 0.25, "mirostat": 0}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["response"], "echo: hello there");
    let g = fake.seen.lock().unwrap().generate.clone().unwrap();
    let roles: Vec<&str> = g.messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["system", "user"]);
    assert_eq!(g.messages[0].content, "be brief");
    let s = g.sampling.unwrap();
    assert_eq!(
        (s.temperature, s.top_p, s.top_k, s.max_tokens),
        (0.0, 0.5, 5, 7)
    );
    assert_eq!((s.seed, s.stop), (Some(3), vec!["\n".to_string()]));
    assert_eq!((s.repeat_penalty, s.repeat_last_n), (1.3, 8));
    assert_eq!((s.presence_penalty, s.frequency_penalty), (0.5, 0.25));
}

#[tokio::test]
async fn unset_options_take_ollamas_defaults() {
    let (router, fake) = app();
    post(
        &router,
        "/api/generate",
        json!({"model": "smollm2", "prompt": "x", "stream": false}),
    )
    .await;
    let s = fake
        .seen
        .lock()
        .unwrap()
        .generate
        .clone()
        .unwrap()
        .sampling
        .unwrap();
    assert_eq!((s.temperature, s.top_p, s.top_k), (0.8, 0.9, 40));
    assert_eq!(
        (s.repeat_penalty, s.repeat_last_n, s.max_tokens),
        (1.1, 64, 0)
    );
}

#[tokio::test]
async fn unsupported_fields_and_options_are_refused_by_name() {
    let (router, fake) = app();
    let user = json!([{"role": "user", "content": "hi"}]);
    let cases = [
        (
            "/api/chat",
            json!({"model": "smollm2", "messages": user, "format": "json"}),
            "format",
        ),
        (
            "/api/chat",
            json!({"model": "smollm2", "messages": user, "tools": [{"type": "function"}]}),
            "tools",
        ),
        (
            "/api/chat",
            json!({"model": "smollm2", "messages": [{"role": "user", "content": "hi", "images": ["aGk="]}]}),
            "messages[0].images",
        ),
        (
            "/api/chat",
            json!({"model": "smollm2", "messages": user, "options": {"mirostat": 2}}),
            "options.mirostat",
        ),
        (
            "/api/chat",
            json!({"model": "smollm2", "messages": user, "options": {"num_ctx": 4096}}),
            "options.num_ctx",
        ),
        (
            "/api/chat",
            json!({"model": "smollm2", "messages": user, "colour": "red"}),
            "colour",
        ),
        (
            "/api/generate",
            json!({"model": "smollm2", "prompt": "x", "raw": true}),
            "raw",
        ),
        (
            "/api/generate",
            json!({"model": "smollm2", "prompt": "x", "template": "{{ .Prompt }}"}),
            "template",
        ),
        (
            "/api/generate",
            json!({"model": "smollm2", "prompt": "x", "context": [1, 2]}),
            "context",
        ),
        (
            "/api/generate",
            json!({"model": "smollm2", "prompt": "x", "options": {"num_predict": 100000}}),
            "options.num_predict",
        ),
        (
            "/api/generate",
            json!({"model": "smollm2", "prompt": "x", "options": {"temperature": "hot"}}),
            "options.temperature",
        ),
    ];
    for (path, body, field) in cases {
        let m = post(&router, path, body.clone())
            .await
            .error(StatusCode::BAD_REQUEST);
        assert!(m.contains(field), "{path} {body}: {m}");
    }
    assert!(fake.seen.lock().unwrap().generate.is_none(), "nothing ran");
    // Values that ask for nothing are accepted, as the official client sends them.
    let r = post(
        &router,
        "/api/chat",
        json!({"model": "smollm2", "messages": user, "tools": [], "format": "", "stream": false}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn model_names_resolve_with_and_without_latest() {
    let (router, _) = app();
    let user = json!([{"role": "user", "content": "hi"}]);
    for name in ["smollm2", "smollm2:latest"] {
        let r = post(
            &router,
            "/api/chat",
            json!({"model": name, "messages": user, "stream": false}),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.body);
        assert_eq!(r.json()["model"], name);
    }
    let m = post(
        &router,
        "/api/chat",
        json!({"model": "smollm2:7b", "messages": user}),
    )
    .await
    .error(StatusCode::NOT_FOUND);
    assert!(m.contains("smollm2:7b"), "{m}");
}

#[tokio::test]
async fn keep_alive_values_reach_the_residency_of_the_model_that_ran() {
    let (router, fake) = app();
    let user = json!([{"role": "user", "content": "hi"}]);
    let cases = [
        (json!(0), KeepAlive::Unload),
        (json!("0"), KeepAlive::Unload),
        (json!("5m"), KeepAlive::For(Duration::from_secs(300))),
        (json!(90), KeepAlive::For(Duration::from_secs(90))),
        (json!("1h30m"), KeepAlive::For(Duration::from_secs(5400))),
        (json!(-1), KeepAlive::Forever),
        (json!("-1m"), KeepAlive::Forever),
        (json!(null), KeepAlive::Default),
    ];
    for (value, want) in cases {
        let body = json!({"model": "auto", "messages": user, "keep_alive": value, "stream": false});
        assert_eq!(
            post(&router, "/api/chat", body).await.status,
            StatusCode::OK
        );
        let last = fake.seen.lock().unwrap().keep_alive.last().cloned();
        assert_eq!(last, Some(("smollm2".to_string(), want)), "{value}");
    }
    let m = post(
        &router,
        "/api/chat",
        json!({"model": "smollm2", "messages": user, "keep_alive": "soon"}),
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    assert!(m.contains("keep_alive"), "{m}");
}

#[tokio::test]
async fn an_empty_prompt_loads_or_unloads_and_pinned_models_refuse_to_unload() {
    let (router, fake) = app();
    let r = post(&router, "/api/generate", json!({"model": "smollm2"})).await;
    assert_eq!(r.json()["done_reason"], "load", "{}", r.body);
    assert_eq!(fake.seen.lock().unwrap().preloaded, vec!["smollm2"]);
    let r = post(
        &router,
        "/api/chat",
        json!({"model": "smollm2", "messages": [], "keep_alive": 0}),
    )
    .await;
    assert_eq!(r.json()["done_reason"], "unload");
    assert_eq!(
        fake.seen.lock().unwrap().keep_alive.last().cloned(),
        Some(("smollm2".to_string(), KeepAlive::Unload))
    );
    let m = post(
        &router,
        "/api/generate",
        json!({"model": "router", "keep_alive": 0}),
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    assert!(m.contains("pinned"), "{m}");
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
    let want: Vec<Value> = ["cat", "dog"]
        .iter()
        .map(|t| json!(fake_vector(t)))
        .collect();
    assert_eq!(v["embeddings"], json!(want));
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
async fn a_failure_mid_stream_is_an_error_line() {
    let (router, _) = app();
    let r = post(
        &router,
        "/api/chat",
        json!({"model": "broken", "messages": [{"role": "user", "content": "x y"}]}),
    )
    .await;
    let lines = r.lines();
    assert_eq!(lines[0]["message"]["content"], "echo:");
    assert!(
        lines.last().unwrap()["error"]
            .as_str()
            .is_some_and(|e| e.contains("device lost"))
    );
    // An early failure keeps its status.
    post(
        &router,
        "/api/chat",
        json!({"model": "full", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await
    .error(StatusCode::TOO_MANY_REQUESTS);
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
