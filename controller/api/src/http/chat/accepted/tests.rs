//! Every OpenAI request field is honoured or refused with 400 naming it.

use axum::http::StatusCode;
use serde_json::json;

use crate::http::tests::{default_app, post};

#[tokio::test]
async fn penalties_logit_bias_and_top_k_reach_the_sampler() {
    let (r, fake) = default_app();
    let reply = post(
        &r,
        "/v1/chat/completions",
        json!({"model": "smollm2", "messages": [{"role": "user", "content": "hi"}],
               "presence_penalty": 0.5, "frequency_penalty": -1.5, "top_k": 7,
               "logit_bias": {"50256": -100, "13": 2.5}}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let s = fake
        .seen
        .lock()
        .unwrap()
        .generate
        .clone()
        .unwrap()
        .sampling
        .unwrap();
    assert_eq!(
        (s.presence_penalty, s.frequency_penalty, s.top_k),
        (0.5, -1.5, 7)
    );
    assert_eq!(s.logit_bias.get(&50256), Some(&-100.0));
    assert_eq!(s.logit_bias.get(&13), Some(&2.5));
    let reply = post(
        &r,
        "/v1/completions",
        json!({"model": "smollm2", "prompt": "hi", "frequency_penalty": 1, "logprobs": 0, "best_of": 1}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let s = fake
        .seen
        .lock()
        .unwrap()
        .generate
        .clone()
        .unwrap()
        .sampling
        .unwrap();
    assert_eq!(s.frequency_penalty, 1.0);
}

#[tokio::test]
async fn fields_not_acted_on_are_refused_by_name() {
    let (r, fake) = default_app();
    let user = json!([{"role": "user", "content": "hi"}]);
    let chat = |extra: serde_json::Value| {
        let mut b = json!({"model": "smollm2", "messages": user});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let cases = [
        (chat(json!({"colour": "red"})), "colour", "unknown field"),
        (
            chat(json!({"tool_choice": "required"})),
            "tool_choice",
            "needs tools",
        ),
        (
            chat(json!({"tool_choice": {"type": "function", "function": {"name": "f"}}})),
            "tool_choice",
            "which tools does not declare",
        ),
        (
            chat(json!({"logprobs": true})),
            "logprobs",
            "native ONNX decoder",
        ),
        (
            chat(json!({"top_logprobs": 3})),
            "top_logprobs",
            "not supported",
        ),
        (
            chat(json!({"store": true})),
            "store",
            "keeps no completions",
        ),
        (
            chat(json!({"reasoning_effort": "high"})),
            "reasoning_effort",
            "not supported",
        ),
        (
            chat(json!({"service_tier": "flex"})),
            "service_tier",
            "not supported",
        ),
        (
            chat(json!({"modalities": ["text", "audio"]})),
            "modalities",
            "not supported",
        ),
        (
            chat(json!({"stream_options": {"include_obfuscation": true}})),
            "stream_options.include_obfuscation",
            "unknown field",
        ),
        (
            chat(json!({"presence_penalty": 2.5})),
            "presence_penalty",
            "between -2 and 2",
        ),
        (
            chat(json!({"logit_bias": {"abc": 1}})),
            "logit_bias",
            "token ids",
        ),
        (
            chat(json!({"logit_bias": {"5": 101}})),
            "logit_bias",
            "between -100 and 100",
        ),
        (
            chat(json!({"metadata": {"k": 1}})),
            "metadata",
            "must be a string",
        ),
        (chat(json!({"user": "u".repeat(300)})), "user", "256"),
        (
            json!({"model": "smollm2", "messages": [{"role": "user", "content": "hi", "name": "bob"}]}),
            "messages",
            "messages[0].name",
        ),
        (
            json!({"model": "smollm2", "messages": [{"role": "user", "content": [{"type": "text", "text": "x", "cache_control": {}}]}]}),
            "messages",
            "messages[0].content[0].cache_control",
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
    for (path, body, param) in [
        (
            "/v1/completions",
            json!({"model": "smollm2", "prompt": "x", "echo": true}),
            "echo",
        ),
        (
            "/v1/completions",
            json!({"model": "smollm2", "prompt": "x", "logprobs": 2}),
            "logprobs",
        ),
        (
            "/v1/completions",
            json!({"model": "smollm2", "prompt": "x", "metadata": {}}),
            "metadata",
        ),
        (
            "/v1/embeddings",
            json!({"model": "minilm", "input": "x", "truncate": true}),
            "truncate",
        ),
        (
            "/v1/pipeline",
            json!({"prompt": "x", "stream": true}),
            "stream",
        ),
        (
            "/v1/documents",
            json!({"documents": ["x"], "ids": [1]}),
            "ids",
        ),
    ] {
        let e = post(&r, path, body.clone())
            .await
            .error(StatusCode::BAD_REQUEST);
        assert_eq!(e["param"], param, "{path} {body} → {e}");
    }
    assert!(fake.seen.lock().unwrap().generate.is_none(), "nothing ran");
}

#[tokio::test]
async fn values_that_ask_for_nothing_are_accepted() {
    let (r, _) = default_app();
    let body = json!({
        "model": "smollm2", "messages": [{"role": "user", "content": "hi"}],
        "tools": [], "tool_choice": "none", "parallel_tool_calls": true,
        "response_format": {"type": "text"}, "logprobs": false, "store": false,
        "service_tier": "auto", "modalities": ["text"], "n": 1,
        "user": "alice", "metadata": {"team": "search"}
    });
    let reply = post(&r, "/v1/chat/completions", body).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
}

#[tokio::test]
async fn tools_formats_and_tool_messages_reach_the_inference_for_an_engine() {
    let (r, fake) = default_app();
    let tools = json!([{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]);
    let reply = post(
        &r,
        "/v1/chat/completions",
        json!({"model": "smollm2", "tools": tools, "tool_choice": "required",
               "response_format": {"type": "json_object"},
               "messages": [
                   {"role": "user", "content": "2+2?"},
                   {"role": "assistant", "content": null, "tool_calls": [
                       {"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{}"}}]},
                   {"role": "tool", "tool_call_id": "c1", "content": "4"}]}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let g = fake.seen.lock().unwrap().generate.clone().unwrap();
    let o = g.engine_options.expect("engine options carried");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&o.tools_json).unwrap(),
        tools
    );
    assert_eq!(o.tool_choice_json, "\"required\"");
    assert!(o.response_format_json.contains("json_object"));
    assert!(g.messages[1].tool_calls_json.contains("\"c1\""));
    assert_eq!(g.messages[2].role, "tool");
    assert_eq!(g.messages[2].tool_call_id, "c1");
    // A tool message without the call it answers is refused.
    let e = post(
        &r,
        "/v1/chat/completions",
        json!({"model": "smollm2", "messages": [
            {"role": "user", "content": "x"}, {"role": "tool", "content": "4"}]}),
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("needs tool_call_id"),
        "{e}"
    );
}
