//! Function calling and structured output: `tools`, `tool_choice`, `parallel_tool_calls`
//! and `response_format` are checked here and carried as [`EngineOptions`] to the engines
//! that act on them (llama-server with `--jinja`, Ollama, vLLM); placement sends such a
//! request to engines only, and refuses it where only the native decoder serves the model.
//! The tool calls an engine streams back are merged here for non-streamed answers.

use serde_json::{Map, Value};
use switchyard_proto::v1::EngineOptions;

use super::*;

/// OpenAI's rule for function names.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The names of the functions `tools` declares (checked; the Ollama routes share it).
pub(crate) fn declared_tools(v: &Value) -> Result<Vec<String>, ApiError> {
    let Value::Array(items) = v else {
        return Err(invalid(
            "tools",
            format!("tools must be an array, got {}", fields::type_name(v)),
        ));
    };
    let mut names = Vec::new();
    for (i, t) in items.iter().enumerate() {
        let Value::Object(t) = t else {
            return Err(invalid("tools", format!("tools[{i}] must be an object")));
        };
        let at = format!("tools[{i}].");
        fields::only(t, &at, &["type", "function"], &[])
            .map_err(|e| invalid("tools", e.message))?;
        if t.get("type").and_then(Value::as_str) != Some("function") {
            return Err(invalid(
                "tools",
                format!("tools[{i}].type must be \"function\" (the only tool type)"),
            ));
        }
        let Some(Value::Object(f)) = t.get("function") else {
            return Err(invalid(
                "tools",
                format!("tools[{i}].function must be an object"),
            ));
        };
        fields::only(
            f,
            &format!("{at}function."),
            &["name", "description", "parameters", "strict"],
            &[],
        )
        .map_err(|e| invalid("tools", e.message))?;
        let name = f.get("name").and_then(Value::as_str).unwrap_or("");
        if !valid_name(name) {
            return Err(invalid(
                "tools",
                format!(
                    "tools[{i}].function.name must be 1-64 letters, digits, '_' or '-', got '{name}'"
                ),
            ));
        }
        if f.get("parameters").is_some_and(|p| !p.is_object()) {
            return Err(invalid(
                "tools",
                format!("tools[{i}].function.parameters must be a JSON schema object"),
            ));
        }
        if names.iter().any(|n| n == name) {
            return Err(invalid(
                "tools",
                format!("tools: function '{name}' is declared twice"),
            ));
        }
        names.push(name.to_string());
    }
    Ok(names)
}

/// `tool_choice`, checked against the declared functions.
fn tool_choice(v: &Value, declared: &[String]) -> Result<(), ApiError> {
    match v {
        Value::String(s) if matches!(s.as_str(), "none" | "auto" | "required") => {
            if s == "required" && declared.is_empty() {
                return Err(invalid("tool_choice", "tool_choice 'required' needs tools"));
            }
            Ok(())
        }
        Value::Object(o) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str);
            match (o.get("type").and_then(Value::as_str), name) {
                (Some("function"), Some(n)) if declared.iter().any(|d| d == n) => Ok(()),
                (Some("function"), Some(n)) => Err(invalid(
                    "tool_choice",
                    format!("tool_choice names function '{n}', which tools does not declare"),
                )),
                _ => Err(invalid(
                    "tool_choice",
                    "tool_choice must be 'none', 'auto', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}",
                )),
            }
        }
        _ => Err(invalid(
            "tool_choice",
            "tool_choice must be 'none', 'auto', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}",
        )),
    }
}

/// `response_format`; `None` for `{"type": "text"}`.
fn response_format(v: &Value) -> Result<Option<String>, ApiError> {
    let bad = |m: String| invalid("response_format", m);
    let Value::Object(o) = v else {
        return Err(bad(format!(
            "response_format must be an object, got {}",
            fields::type_name(v)
        )));
    };
    match o.get("type").and_then(Value::as_str) {
        Some("text") if o.len() == 1 => Ok(None),
        Some("json_object") if o.len() == 1 => Ok(Some(v.to_string())),
        Some("json_schema") => {
            fields::only(o, "response_format.", &["type", "json_schema"], &[])
                .map_err(|e| bad(e.message))?;
            let Some(Value::Object(js)) = o.get("json_schema") else {
                return Err(bad(
                    "response_format.json_schema must be an object with name and schema".into(),
                ));
            };
            fields::only(
                js,
                "response_format.json_schema.",
                &["name", "schema", "strict", "description"],
                &[],
            )
            .map_err(|e| bad(e.message))?;
            if !js.get("name").and_then(Value::as_str).is_some_and(valid_name) {
                return Err(bad(
                    "response_format.json_schema.name must be 1-64 letters, digits, '_' or '-'"
                        .into(),
                ));
            }
            if !js.get("schema").is_some_and(Value::is_object) {
                return Err(bad(
                    "response_format.json_schema.schema must be a JSON schema object".into(),
                ));
            }
            Ok(Some(v.to_string()))
        }
        _ => Err(bad(
            "response_format.type must be 'text', 'json_object' or 'json_schema' (json_object takes no other field)"
                .into(),
        )),
    }
}

/// The request's function-calling and structured-output options; `None` when it asks for
/// neither (no tools, `tool_choice` `none`/`auto` without tools, text format).
pub(super) fn engine_options(body: &Map<String, Value>) -> Result<Option<EngineOptions>, ApiError> {
    let declared = match fields::get(body, "tools") {
        Some(v) => declared_tools(v)?,
        None => Vec::new(),
    };
    if let Some(c) = fields::get(body, "tool_choice") {
        tool_choice(c, &declared)?;
    }
    let parallel = fields::opt_bool(body, "parallel_tool_calls")?;
    let format = match fields::get(body, "response_format") {
        Some(v) => response_format(v)?,
        None => None,
    };
    if declared.is_empty() && format.is_none() {
        return Ok(None);
    }
    let json = |name: &str| {
        fields::get(body, name)
            .filter(|_| !declared.is_empty())
            .map(Value::to_string)
            .unwrap_or_default()
    };
    Ok(Some(EngineOptions {
        tools_json: json("tools"),
        tool_choice_json: json("tool_choice"),
        parallel_tool_calls: parallel.filter(|_| !declared.is_empty()),
        response_format_json: format.unwrap_or_default(),
    }))
}

/// An assistant message's `tool_calls`, checked, as compact JSON.
pub(super) fn message_tool_calls(i: usize, v: &Value) -> Result<String, ApiError> {
    let bad = |m: String| invalid("messages", m);
    let Value::Array(calls) = v else {
        return Err(bad(format!("messages[{i}].tool_calls must be an array")));
    };
    for (j, c) in calls.iter().enumerate() {
        let at = format!("messages[{i}].tool_calls[{j}]");
        let f = c.get("function");
        let ok = c.get("id").is_some_and(Value::is_string)
            && c.get("type").and_then(Value::as_str) == Some("function")
            && f.and_then(|f| f.get("name")).is_some_and(Value::is_string)
            && f.and_then(|f| f.get("arguments"))
                .is_some_and(Value::is_string);
        if !ok {
            return Err(bad(format!(
                "{at} must be {{\"id\": string, \"type\": \"function\", \"function\": {{\"name\": string, \"arguments\": string}}}}"
            )));
        }
    }
    Ok(v.to_string())
}

/// Folds streamed tool call deltas (OpenAI's shape: by `index`, `function.arguments` in
/// pieces) into whole calls.
pub(super) fn merge_deltas(calls: &mut Vec<Value>, deltas: &Value) {
    for d in deltas.as_array().into_iter().flatten() {
        let index = d.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
        while calls.len() <= index {
            calls.push(serde_json::json!({
                "id": "", "type": "function", "function": {"name": "", "arguments": ""}
            }));
        }
        let call = &mut calls[index];
        if let Some(id) = d.get("id").and_then(Value::as_str) {
            call["id"] = Value::from(id);
        }
        let f = d.get("function");
        if let Some(name) = f.and_then(|f| f.get("name")).and_then(Value::as_str) {
            call["function"]["name"] = Value::from(name);
        }
        if let Some(piece) = f.and_then(|f| f.get("arguments")).and_then(Value::as_str) {
            let mut args = call["function"]["arguments"]
                .as_str()
                .unwrap_or("")
                .to_string();
            args.push_str(piece);
            call["function"]["arguments"] = Value::from(args);
        }
    }
}

#[cfg(test)]
mod tests;
