//! Function calling and structured output through Ollama's `/api/chat`: OpenAI's `tools`
//! are Ollama's as they are; `response_format` becomes `format` (`"json"` or the schema);
//! tool calls come back whole (arguments as an object) and go on as OpenAI deltas.

use serde_json::{Map, Value, json};
use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::{ChatMessage, EngineOptions};

use super::super::EngineError;

/// Adds `opts` to the request body, or refuses what Ollama cannot do.
pub(super) fn apply(
    body: &mut Map<String, Value>,
    opts: &EngineOptions,
    endpoint: &str,
) -> Result<(), EngineError> {
    let refuse = |what: &str| {
        EngineError::new(
            ErrorClass::InvalidArgument,
            format!(
                "{what} is not supported by the model's engine (Ollama endpoint {endpoint}): only tool_choice 'auto' or 'none'"
            ),
        )
    };
    let choice: Option<Value> = serde_json::from_str(&opts.tool_choice_json).ok();
    let tools_off = choice.as_ref().is_some_and(|c| c == "none");
    match &choice {
        None => {}
        Some(Value::String(s)) if s == "auto" || s == "none" => {}
        Some(_) => return Err(refuse("tool_choice 'required' or a named function")),
    }
    if opts.parallel_tool_calls == Some(false) {
        return Err(refuse("parallel_tool_calls = false"));
    }
    if !tools_off && let Ok(tools) = serde_json::from_str::<Value>(&opts.tools_json) {
        body.insert("tools".into(), tools);
    }
    if let Ok(format) = serde_json::from_str::<Value>(&opts.response_format_json) {
        let f = match format["type"].as_str() {
            Some("json_schema") => format["json_schema"]["schema"].clone(),
            _ => json!("json"),
        };
        body.insert("format".into(), f);
    }
    Ok(())
}

/// One message as Ollama has it: tool call arguments as objects.
pub(super) fn message(m: &ChatMessage) -> Value {
    let mut v = json!({"role": m.role, "content": m.content});
    if let Ok(Value::Array(calls)) = serde_json::from_str::<Value>(&m.tool_calls_json) {
        let calls: Vec<Value> = calls
            .iter()
            .map(|c| {
                let args = c["function"]["arguments"].as_str().unwrap_or("{}");
                let args = serde_json::from_str::<Value>(args).unwrap_or_else(|_| json!(args));
                json!({"function": {"name": c["function"]["name"], "arguments": args}})
            })
            .collect();
        v["tool_calls"] = Value::Array(calls);
    }
    v
}

/// Ollama's whole tool calls as OpenAI deltas, numbered on from `next_index`.
pub(super) fn deltas(calls: &[Value], next_index: &mut usize) -> Value {
    let out: Vec<Value> = calls
        .iter()
        .map(|c| {
            let i = *next_index;
            *next_index += 1;
            let args = match &c["function"]["arguments"] {
                Value::String(s) => s.clone(),
                Value::Null => "{}".to_string(),
                other => other.to_string(),
            };
            json!({
                "index": i,
                "id": c["id"].as_str().map_or_else(|| format!("call_{i}"), str::to_string),
                "type": "function",
                "function": {"name": c["function"]["name"], "arguments": args},
            })
        })
        .collect();
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(tools: &str, choice: &str, format: &str) -> EngineOptions {
        EngineOptions {
            tools_json: tools.into(),
            tool_choice_json: choice.into(),
            parallel_tool_calls: None,
            response_format_json: format.into(),
        }
    }

    #[test]
    fn tools_pass_as_they_are_and_a_json_schema_becomes_the_format() {
        let tools = r#"[{"type":"function","function":{"name":"f"}}]"#;
        let schema =
            r#"{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}}"#;
        let mut b = Map::new();
        apply(&mut b, &opts(tools, "\"auto\"", schema), "e").unwrap();
        assert_eq!(b["tools"][0]["function"]["name"], "f");
        assert_eq!(b["format"], json!({"type": "object"}));
        let mut b = Map::new();
        apply(&mut b, &opts("", "", r#"{"type":"json_object"}"#), "e").unwrap();
        assert_eq!(b["format"], "json");
        assert!(!b.contains_key("tools"));
        let mut b = Map::new();
        apply(&mut b, &opts(tools, "\"none\"", ""), "e").unwrap();
        assert!(!b.contains_key("tools"), "tool_choice none sends no tools");
    }

    #[test]
    fn what_ollama_cannot_do_is_refused_naming_the_endpoint() {
        let tools = r#"[{"type":"function","function":{"name":"f"}}]"#;
        let e = apply(&mut Map::new(), &opts(tools, "\"required\"", ""), "gpu-box").unwrap_err();
        assert_eq!(e.class, ErrorClass::InvalidArgument);
        assert!(e.message.contains("gpu-box"), "{}", e.message);
    }

    #[test]
    fn whole_tool_calls_become_numbered_openai_deltas_and_back() {
        let mut next = 0;
        let d = deltas(
            &[json!({"function": {"name": "f", "arguments": {"city": "Oslo"}}})],
            &mut next,
        );
        assert_eq!(next, 1);
        assert_eq!(d[0]["index"], 0);
        assert_eq!(d[0]["function"]["arguments"], r#"{"city":"Oslo"}"#);
        let m = ChatMessage {
            role: "assistant".into(),
            tool_calls_json: d.to_string(),
            ..Default::default()
        };
        assert_eq!(
            message(&m)["tool_calls"][0]["function"]["arguments"]["city"],
            "Oslo"
        );
    }
}
