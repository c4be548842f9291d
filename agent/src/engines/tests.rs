//! The pure parts of attaching engines: configuration, error classes, how sampling maps
//! onto each wire protocol, the pseudo-device. Proxying to a real server (another
//! `switchyard up` through its Ollama API) is tested end to end in tests/e2e/attach.rs.

use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::{DeviceHealth, DeviceKind, SamplingParams};

use super::*;

fn config(kind: EngineKind, url: &str) -> EndpointConfig {
    EndpointConfig {
        name: "box".into(),
        kind,
        url: url.into(),
        device: Some("nvidia_gpu".into()),
        token: Some("s3cret".into()),
    }
}

#[test]
fn http_answers_map_to_the_error_table() {
    let class = |s| EngineError::from_http(s, "x").class;
    assert_eq!(class(400), ErrorClass::InvalidArgument);
    assert_eq!(class(404), ErrorClass::NotFound);
    assert_eq!(class(429), ErrorClass::ResourceExhausted);
    // A refused token or a server error makes the target unusable: retried elsewhere.
    assert_eq!(class(401), ErrorClass::Unavailable);
    assert_eq!(class(500), ErrorClass::Unavailable);
    assert_eq!(class(503), ErrorClass::Unavailable);
}

#[test]
fn an_endpoint_is_a_pseudo_device_that_starts_down() {
    let ep = Endpoint::new(config(EngineKind::Ollama, "http://127.0.0.1:9/")).unwrap();
    assert_eq!(ep.device_id(), "endpoint:box");
    assert_eq!(ep.config().base_url(), "http://127.0.0.1:9");
    let d = ep.device();
    assert_eq!(d.kind, DeviceKind::NvidiaGpu as i32);
    assert_eq!(d.engine, "ollama");
    assert_eq!(d.backends[0].backend, "ollama");
    assert_eq!(d.health, DeviceHealth::Unavailable as i32);
    assert!(d.models.is_empty());
    assert!(ep.resident().is_empty());
    assert!(!format!("{:?}", ep.config()).contains("s3cret"));
}

#[tokio::test]
async fn a_poll_of_nothing_listening_marks_it_down_with_the_reason() {
    // Port 9 (discard) on loopback: nothing listens there on these machines.
    let engines = Engines::new(&[config(EngineKind::Openai, "http://127.0.0.1:9")]).unwrap();
    let ep = engines.get("endpoint:box").unwrap();
    ep.poll().await;
    assert!(!ep.healthy());
    let d = ep.device();
    assert!(
        d.health_reason.contains("endpoint box"),
        "{}",
        d.health_reason
    );
    assert_eq!(
        engines.telemetry()[0].health,
        DeviceHealth::Unavailable as i32
    );
}

#[test]
fn ollama_options_say_off_where_switchyard_means_off() {
    let s = SamplingParams {
        temperature: 0.0,
        top_p: 0.0,
        ..Default::default()
    };
    let o = ollama::options(&s);
    assert_eq!(
        o["repeat_penalty"], 1.0,
        "Ollama's default 1.1 would change the answer"
    );
    assert_eq!(o["num_predict"], crate::service::DEFAULT_MAX_TOKENS);
    assert!(!o.contains_key("top_p") && !o.contains_key("top_k"));
    let s = SamplingParams {
        top_k: 40,
        repeat_penalty: 1.3,
        repeat_last_n: 16,
        seed: Some(7),
        stop: vec!["\n".into()],
        max_tokens: 9,
        ..Default::default()
    };
    let o = ollama::options(&s);
    assert_eq!(
        (o["top_k"].clone(), o["repeat_last_n"].clone()),
        (40.into(), 16.into())
    );
    assert_eq!(o["seed"], 7);
    assert_eq!(o["num_predict"], 9);
}

#[test]
fn openai_bodies_carry_penalties_and_bias_and_extensions_only_when_set() {
    let msgs = vec![switchyard_proto::v1::ChatMessage {
        role: "user".into(),
        content: "hi".into(),
        ..Default::default()
    }];
    let plain = openai::body("m", &msgs, &SamplingParams::default(), None);
    for k in [
        "logit_bias",
        "top_k",
        "repeat_penalty",
        "presence_penalty",
        "seed",
    ] {
        assert!(plain.get(k).is_none(), "{k} in {plain}");
    }
    assert_eq!(plain["stream_options"]["include_usage"], true);
    let s = SamplingParams {
        presence_penalty: 0.5,
        logit_bias: [(13, -100.0)].into_iter().collect(),
        top_k: 5,
        ..Default::default()
    };
    let b = openai::body("m", &msgs, &s, None);
    assert_eq!(b["presence_penalty"], 0.5);
    assert_eq!(b["logit_bias"]["13"], -100.0);
    assert_eq!(b["top_k"], 5);
    for k in [
        "tools",
        "tool_choice",
        "response_format",
        "parallel_tool_calls",
    ] {
        assert!(b.get(k).is_none(), "{k} in {b}");
    }
}

#[test]
fn openai_bodies_carry_tools_formats_and_tool_messages_verbatim() {
    let call = r#"[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]"#;
    let msgs = vec![
        switchyard_proto::v1::ChatMessage {
            role: "assistant".into(),
            tool_calls_json: call.into(),
            ..Default::default()
        },
        switchyard_proto::v1::ChatMessage {
            role: "tool".into(),
            content: "42".into(),
            tool_call_id: "c1".into(),
            ..Default::default()
        },
    ];
    let opts = switchyard_proto::v1::EngineOptions {
        tools_json: r#"[{"type":"function","function":{"name":"f"}}]"#.into(),
        tool_choice_json: "\"required\"".into(),
        parallel_tool_calls: Some(false),
        response_format_json: r#"{"type":"json_object"}"#.into(),
    };
    let b = openai::body("m", &msgs, &SamplingParams::default(), Some(&opts));
    assert_eq!(b["tools"][0]["function"]["name"], "f");
    assert_eq!(b["tool_choice"], "required");
    assert_eq!(b["parallel_tool_calls"], false);
    assert_eq!(b["response_format"]["type"], "json_object");
    assert_eq!(b["messages"][0]["tool_calls"][0]["id"], "c1");
    assert_eq!(b["messages"][1]["tool_call_id"], "c1");
}

#[test]
fn ollama_names_drop_latest() {
    assert_eq!(ollama::client_name("llama3.2:latest"), "llama3.2");
    assert_eq!(ollama::client_name("qwen2.5:7b"), "qwen2.5:7b");
}

#[test]
fn a_continuation_is_sent_as_the_open_assistant_message() {
    use switchyard_proto::v1::{AgentGenerateRequest, ChatMessage};
    let msg = |role: &str, content: &str| ChatMessage {
        role: role.into(),
        content: content.into(),
        ..Default::default()
    };
    let mut req = AgentGenerateRequest {
        messages: vec![msg("user", "Count to 10.")],
        ..Default::default()
    };
    assert_eq!(proxy::with_continuation(&req), req.messages, "a new reply");
    req.continuation = "1, 2,".into();
    let sent = proxy::with_continuation(&req);
    assert_eq!(sent.len(), 2);
    assert_eq!(
        (sent[1].role.as_str(), sent[1].content.as_str()),
        ("assistant", "1, 2,")
    );
    // The client's own prefill is extended, not followed by a second assistant message
    // (llama-server refuses two at the end).
    req.messages.push(msg("assistant", "Sure: "));
    let sent = proxy::with_continuation(&req);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].content, "Sure: 1, 2,");
}

#[test]
fn the_echo_of_a_continued_message_is_skipped_once() {
    use super::proxy::skip_echo;
    // llama-server: the whole prefix and the first new token in one delta.
    let mut echo = "1, 2, 3".to_string();
    assert_eq!(skip_echo(&mut echo, "1, 2, 3, 4"), ", 4");
    assert_eq!(skip_echo(&mut echo, "1, 2, 3"), "1, 2, 3", "only once");
    // Split over several deltas.
    let mut echo = "Hello world".to_string();
    assert_eq!(skip_echo(&mut echo, "Hello"), "");
    assert_eq!(skip_echo(&mut echo, " wor"), "");
    assert_eq!(skip_echo(&mut echo, "ld!"), "!");
    // An engine that does not echo: its text passes untouched.
    let mut echo = "1, 2, 3".to_string();
    assert_eq!(skip_echo(&mut echo, ", 4"), ", 4");
    assert!(echo.is_empty());
}
