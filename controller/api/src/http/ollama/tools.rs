//! Function calling and structured output on `/api/chat`, Ollama's way: `tools` (the same
//! shape as OpenAI's), `format` (`"json"` or a JSON schema object), assistant messages with
//! `tool_calls` (`{"function": {"name", "arguments": {…}}}`, arguments an object, no id) and
//! `tool` messages (`tool_name`). They are converted to the OpenAI form the engines take
//! ([`EngineOptions`], ids `call_<message>_<n>` tying each result to its call), so placement
//! sends such a request to engines only, as on `/v1/chat/completions`; the calls an engine
//! returns are given back in Ollama's form.

use serde_json::{Map, Value, json};
use switchyard_proto::v1::{ChatMessage, EngineOptions};

use crate::http::chat::tools::declared_tools;
use crate::http::fields;
use crate::inference::ApiError;
use crate::validate::invalid;

/// The request's `tools` and `format` as engine options; `None` when it asks for neither.
pub(super) fn engine_options(body: &Map<String, Value>) -> Result<Option<EngineOptions>, ApiError> {
    let tools = match fields::get(body, "tools") {
        Some(v) if !fields::asks_nothing(v) => {
            declared_tools(v)?;
            v.to_string()
        }
        _ => String::new(),
    };
    let format = match fields::get(body, "format") {
        None => String::new(),
        Some(v) if fields::asks_nothing(v) => String::new(),
        Some(Value::String(s)) if s == "json" => json!({"type": "json_object"}).to_string(),
        Some(Value::Object(schema)) => json!({
            "type": "json_schema",
            "json_schema": {"name": "format", "schema": schema},
        })
        .to_string(),
        Some(v) => {
            return Err(invalid(
                "format",
                format!(
                    "format must be \"json\" or a JSON schema object, got {}",
                    fields::type_name(v)
                ),
            ));
        }
    };
    if tools.is_empty() && format.is_empty() {
        return Ok(None);
    }
    Ok(Some(EngineOptions {
        tools_json: tools,
        response_format_json: format,
        ..Default::default()
    }))
}

/// An assistant message's Ollama `tool_calls` as OpenAI's (string arguments, ids from the
/// message index `i`).
pub(super) fn assistant_calls(i: usize, v: &Value) -> Result<String, ApiError> {
    let bad = || {
        invalid(
            "messages",
            format!(
                "messages[{i}].tool_calls must be an array of {{\"function\": {{\"name\": string, \"arguments\": object}}}}"
            ),
        )
    };
    let Value::Array(calls) = v else {
        return Err(bad());
    };
    let mut out = Vec::with_capacity(calls.len());
    for (j, c) in calls.iter().enumerate() {
        let f = c.get("function").ok_or_else(bad)?;
        let name = f.get("name").and_then(Value::as_str).ok_or_else(bad)?;
        let args = match f.get("arguments") {
            Some(Value::Object(a)) => Value::Object(a.clone()).to_string(),
            None => "{}".to_string(),
            Some(_) => return Err(bad()),
        };
        out.push(json!({
            "id": call_id(i, j),
            "type": "function",
            "function": {"name": name, "arguments": args},
        }));
    }
    Ok(Value::Array(out).to_string())
}

fn call_id(message: usize, n: usize) -> String {
    format!("call_{message}_{n}")
}

/// Gives every `tool` message the id of the call it answers: the earliest unanswered call
/// of the last assistant message before it with that `tool_name` (or of any name).
pub(super) fn link_results(
    messages: &mut [ChatMessage],
    names: &[Option<String>],
) -> Result<(), ApiError> {
    let mut open: Vec<(String, String)> = Vec::new(); // (id, function name)
    for (i, m) in messages.iter_mut().enumerate() {
        if m.role == "assistant" && !m.tool_calls_json.is_empty() {
            let calls: Vec<Value> = serde_json::from_str(&m.tool_calls_json).unwrap_or_default();
            open = calls
                .iter()
                .map(|c| {
                    let s = |p: &str| {
                        c.pointer(p)
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string()
                    };
                    (s("/id"), s("/function/name"))
                })
                .collect();
        } else if m.role == "tool" {
            let wanted = names.get(i).cloned().flatten();
            let at = open
                .iter()
                .position(|(_, n)| wanted.as_deref().is_none_or(|w| w == n))
                .ok_or_else(|| {
                    invalid(
                        "messages",
                        format!(
                            "messages[{i}] (role 'tool') answers no earlier assistant tool call{}",
                            wanted.map(|w| format!(" named '{w}'")).unwrap_or_default()
                        ),
                    )
                })?;
            m.tool_call_id = open.remove(at).0;
        }
    }
    Ok(())
}

/// Whole OpenAI tool calls (string arguments) in Ollama's form (object arguments).
pub(super) fn ollama_calls(calls: &[Value]) -> Value {
    Value::Array(
        calls
            .iter()
            .map(|c| {
                let args = c
                    .pointer("/function/arguments")
                    .and_then(Value::as_str)
                    .and_then(|a| serde_json::from_str::<Value>(a).ok())
                    .unwrap_or_else(|| json!({}));
                json!({"function": {
                    "name": c.pointer("/function/name").cloned().unwrap_or(Value::Null),
                    "arguments": args,
                }})
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_results_are_linked_to_their_calls_by_name_and_order() {
        let calls = assistant_calls(
            1,
            &json!([
                {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                {"function": {"name": "get_time", "arguments": {}}}
            ]),
        )
        .unwrap();
        let parsed: Value = serde_json::from_str(&calls).unwrap();
        assert_eq!(parsed[0]["function"]["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(parsed[1]["id"], "call_1_1");
        let msg = |role: &str| ChatMessage {
            role: role.into(),
            ..Default::default()
        };
        let mut messages = vec![
            msg("user"),
            ChatMessage {
                tool_calls_json: calls,
                ..msg("assistant")
            },
            msg("tool"),
            msg("tool"),
        ];
        let names = [None, None, Some("get_time".to_string()), None];
        link_results(&mut messages, &names).unwrap();
        assert_eq!(messages[2].tool_call_id, "call_1_1");
        assert_eq!(messages[3].tool_call_id, "call_1_0");
        let mut orphan = vec![msg("user"), msg("tool")];
        let e = link_results(&mut orphan, &[None, None]).unwrap_err();
        assert!(
            e.message.contains("answers no earlier assistant tool call"),
            "{}",
            e.message
        );
    }

    #[test]
    fn format_and_tools_become_engine_options_and_nothing_asks_nothing() {
        let body = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            engine_options(&body(json!({"format": "", "tools": []}))).unwrap(),
            None
        );
        let o = engine_options(&body(json!({"format": "json"})))
            .unwrap()
            .unwrap();
        assert_eq!(o.response_format_json, "{\"type\":\"json_object\"}");
        let o = engine_options(&body(json!({"format": {"type": "object"}})))
            .unwrap()
            .unwrap();
        assert!(
            o.response_format_json.contains("json_schema"),
            "{}",
            o.response_format_json
        );
        let e = engine_options(&body(json!({"format": "yaml"}))).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("format"));
        let e = engine_options(&body(
            json!({"tools": [{"type": "function", "function": {"name": "bad name"}}]}),
        ))
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("tools"));
        assert_eq!(
            ollama_calls(&[
                json!({"id": "x", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}})
            ]),
            json!([{"function": {"name": "f", "arguments": {"a": 1}}}])
        );
    }
}
