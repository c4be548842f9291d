//! The Ollama generation routes (`/api/chat`, `/api/generate`) against the fake.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use super::{app, post};
use crate::inference::KeepAlive;

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
            json!({"model": "smollm2", "messages": user, "format": "yaml"}),
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
            json!({"model": "smollm2", "messages": [{"role": "user", "content": "hi", "tool_name": "f"}]}),
            "messages[0].tool_name",
        ),
        (
            "/api/chat",
            json!({"model": "smollm2", "messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "42"}]}),
            "messages",
        ),
        (
            "/api/generate",
            json!({"model": "smollm2", "prompt": "x", "tools": [{"type": "function", "function": {"name": "f"}}]}),
            "tools",
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
