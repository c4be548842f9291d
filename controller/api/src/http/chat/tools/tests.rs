use serde_json::json;

use super::*;

fn body(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn weather() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    }}])
}

#[test]
fn tools_and_a_json_schema_become_engine_options_verbatim() {
    let o = engine_options(&body(json!({
        "tools": weather(),
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": false,
    })))
    .unwrap()
    .expect("tools ask for an engine");
    assert_eq!(
        serde_json::from_str::<Value>(&o.tools_json).unwrap(),
        weather()
    );
    assert!(
        o.tool_choice_json.contains("get_weather"),
        "{}",
        o.tool_choice_json
    );
    assert_eq!(o.parallel_tool_calls, Some(false));
    assert!(o.response_format_json.is_empty());

    let schema = json!({"type": "json_schema", "json_schema": {"name": "city", "strict": true,
        "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}});
    let o = engine_options(&body(json!({"response_format": schema})))
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&o.response_format_json).unwrap(),
        schema
    );
    assert!(o.tools_json.is_empty() && o.tool_choice_json.is_empty());
}

#[test]
fn requests_that_ask_for_nothing_need_no_engine() {
    for b in [
        json!({}),
        json!({"tools": [], "tool_choice": "none"}),
        json!({"tool_choice": "auto"}),
        json!({"response_format": {"type": "text"}}),
    ] {
        assert_eq!(engine_options(&body(b.clone())).unwrap(), None, "{b}");
    }
}

#[test]
fn bad_tools_formats_and_choices_are_refused_naming_the_field() {
    for (b, param, says) in [
        (json!({"tools": {"a": 1}}), "tools", "must be an array"),
        (
            json!({"tools": [{"type": "retrieval"}]}),
            "tools",
            "\"function\"",
        ),
        (
            json!({"tools": [{"type": "function", "function": {"name": "a b"}}]}),
            "tools",
            "letters, digits",
        ),
        (
            json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": 3}}]}),
            "tools",
            "JSON schema object",
        ),
        (
            json!({"tools": [{"type": "function", "function": {"name": "f", "extra": 1}}]}),
            "tools",
            "tools[0].function.extra",
        ),
        (
            json!({"tools": weather(), "tool_choice": {"type": "function", "function": {"name": "nope"}}}),
            "tool_choice",
            "'nope'",
        ),
        (
            json!({"tool_choice": "required"}),
            "tool_choice",
            "needs tools",
        ),
        (
            json!({"tools": weather(), "tool_choice": "always"}),
            "tool_choice",
            "must be",
        ),
        (
            json!({"response_format": {"type": "yaml"}}),
            "response_format",
            "json_schema",
        ),
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}),
            "response_format",
            "schema must be",
        ),
        (
            json!({"response_format": {"type": "json_object", "schema": {}}}),
            "response_format",
            "no other field",
        ),
    ] {
        let e = engine_options(&body(b.clone())).expect_err(&b.to_string());
        assert_eq!(e.param.as_deref(), Some(param), "{b}: {}", e.message);
        assert!(e.message.contains(says), "{b}: {}", e.message);
    }
}

#[test]
fn streamed_tool_call_deltas_merge_into_whole_calls() {
    let mut calls = Vec::new();
    merge_deltas(
        &mut calls,
        &json!([{"index": 0, "id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"ci"}}]),
    );
    merge_deltas(
        &mut calls,
        &json!([{"index": 0, "function": {"arguments": "ty\": \"Oslo\"}"}}]),
    );
    merge_deltas(
        &mut calls,
        &json!([{"index": 1, "id": "call_2", "function": {"name": "f", "arguments": "{}"}}]),
    );
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["id"], "call_1");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(calls[0]["function"]["arguments"], "{\"city\": \"Oslo\"}");
    assert_eq!(calls[1]["function"]["arguments"], "{}");
}

#[test]
fn an_assistant_tool_call_in_the_history_is_checked() {
    let ok =
        json!([{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]);
    assert!(message_tool_calls(1, &ok).unwrap().contains("c1"));
    let e = message_tool_calls(1, &json!([{"id": "c1", "function": {"name": "f"}}])).unwrap_err();
    assert!(
        e.message.contains("messages[1].tool_calls[0]"),
        "{}",
        e.message
    );
}
