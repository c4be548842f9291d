//! Which fields of an OpenAI chat or completion request Switchyard acts on. Every field is
//! either honoured or refused with 400 naming it (`param` set); a value that asks for
//! nothing (`"tools": []`, `"tool_choice": "none"`, `"response_format": {"type": "text"}`,
//! `"n": 1`...) is accepted, since doing nothing is acting on it. `user`,
//! `safety_identifier` and `metadata` are recorded on the request's log span.

use serde_json::{Map, Value};

use crate::http::fields;
use crate::inference::ApiError;
use crate::validate::invalid;

/// Fields of `/v1/chat/completions` that are honoured.
pub(super) const CHAT: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "user",
    "safety_identifier",
    "metadata",
    // Acted on by engines (see `tools.rs`); placement sends such requests to engines only.
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    // Switchyard's extension (`extra_body` in the OpenAI clients): the user's documents as
    // context (`true` or `{"top_k", "collection", "min_score"}`).
    "retrieval",
];

/// Fields of `/v1/completions` that are honoured.
pub(super) const TEXT: &[&str] = &[
    "model",
    "prompt",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "n",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "user",
];

/// Known OpenAI fields that are refused, with the reason.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "tools",
        "tools (function calling) are accepted on /v1/chat/completions only",
    ),
    (
        "tool_choice",
        "tool_choice is accepted on /v1/chat/completions only (with tools)",
    ),
    (
        "parallel_tool_calls",
        "parallel_tool_calls is accepted on /v1/chat/completions only (with tools)",
    ),
    (
        "functions",
        "functions (deprecated by OpenAI) are not supported: use tools",
    ),
    (
        "function_call",
        "function_call (deprecated by OpenAI) other than 'none' is not supported: use tool_choice",
    ),
    (
        "response_format",
        "response_format (JSON mode, JSON schema) is accepted on /v1/chat/completions only",
    ),
    (
        "logprobs",
        "logprobs are not supported by the model's engine (native ONNX decoder)",
    ),
    (
        "top_logprobs",
        "top_logprobs are not supported by the model's engine (native ONNX decoder)",
    ),
    ("echo", "echo is not supported"),
    ("best_of", "best_of must be 1 (one completion per request)"),
    (
        "suffix",
        "suffix (fill-in-the-middle) is not supported by the model's engine (native ONNX decoder)",
    ),
    ("audio", "audio output is not supported"),
    (
        "modalities",
        "modalities other than [\"text\"] are not supported",
    ),
    ("prediction", "predicted outputs are not supported"),
    (
        "store",
        "store is not supported: Switchyard keeps no completions",
    ),
    (
        "reasoning_effort",
        "reasoning_effort is not supported: Switchyard's models do not reason",
    ),
    ("verbosity", "verbosity is not supported"),
    ("web_search_options", "web search is not supported"),
    (
        "service_tier",
        "service_tier other than 'auto' or 'default' is not supported",
    ),
    ("prompt_cache_key", "prompt caching is not supported"),
];

/// Fields of a message that are honoured, and the refused ones.
const MESSAGE: &[&str] = &["role", "content", "tool_calls", "tool_call_id"];
const MESSAGE_UNSUPPORTED: &[(&str, &str)] = &[
    (
        "name",
        "participant names are not supported: the model's chat template has no place for them",
    ),
    (
        "function_call",
        "function_call (deprecated by OpenAI) is not supported: use tool_calls",
    ),
    ("audio", "audio is not supported"),
    ("refusal", "refusal content is not supported"),
];

/// `body` without the fields whose value asks for nothing beyond what Switchyard does.
fn without_no_ops(body: &Map<String, Value>) -> Map<String, Value> {
    let has = |name: &str| fields::get(body, name).is_some_and(|v| !fields::asks_nothing(v));
    let no_tools = !has("tools") && !has("functions");
    body.iter()
        .filter(|(k, v)| {
            let no_op = match (k.as_str(), v) {
                ("tool_choice" | "function_call", Value::String(s)) => {
                    s == "none" || (s == "auto" && no_tools)
                }
                ("parallel_tool_calls", Value::Bool(_)) => no_tools,
                ("response_format", Value::Object(o)) => {
                    o.len() == 1 && o.get("type").and_then(Value::as_str) == Some("text")
                }
                ("best_of", Value::Number(n)) => n.as_u64() == Some(1),
                ("service_tier", Value::String(s)) => s == "auto" || s == "default",
                ("modalities", Value::Array(a)) => a.iter().all(|m| m == "text"),
                _ => false,
            };
            !no_op
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Refuses every field of a request body that `allowed` (the route's list) does not name.
pub(super) fn check(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    fields::only(&without_no_ops(body), "", allowed, UNSUPPORTED)?;
    if let Some(o) = fields::get(body, "stream_options").and_then(Value::as_object) {
        fields::only(o, "stream_options.", &["include_usage"], &[])?;
    }
    Ok(())
}

/// Refuses the fields of message `i` that are not acted on.
pub(super) fn check_message(i: usize, m: &Map<String, Value>) -> Result<(), ApiError> {
    fields::only(m, &format!("messages[{i}]."), MESSAGE, MESSAGE_UNSUPPORTED)
        .map_err(|e| invalid("messages", e.message))
}

/// Who a request is for, as the client says (`user`, `safety_identifier`, `metadata`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(in crate::http) struct Attribution {
    pub(in crate::http) user: Option<String>,
    /// `metadata` as compact JSON.
    pub(in crate::http) metadata: Option<String>,
}

/// Reads and checks the attribution fields (OpenAI's limits: `user` ≤ 256 characters;
/// `metadata` ≤ 16 string values, keys ≤ 64 and values ≤ 512 characters).
pub(in crate::http) fn attribution(body: &Map<String, Value>) -> Result<Attribution, ApiError> {
    let user = match fields::opt_string(body, "safety_identifier")? {
        Some(s) => Some(s),
        None => fields::opt_string(body, "user")?,
    };
    for (name, v) in [
        ("user", fields::opt_string(body, "user")?),
        (
            "safety_identifier",
            fields::opt_string(body, "safety_identifier")?,
        ),
    ] {
        if v.as_ref().is_some_and(|s| s.chars().count() > 256) {
            return Err(invalid(
                name,
                format!("{name} must be at most 256 characters"),
            ));
        }
    }
    let metadata = match fields::get(body, "metadata") {
        None => None,
        Some(Value::Object(o)) => {
            if o.len() > 16 {
                return Err(invalid(
                    "metadata",
                    format!("metadata may hold at most 16 pairs, got {}", o.len()),
                ));
            }
            for (k, v) in o {
                let Value::String(s) = v else {
                    return Err(invalid(
                        "metadata",
                        format!(
                            "metadata.{k} must be a string, got {}",
                            fields::type_name(v)
                        ),
                    ));
                };
                if k.chars().count() > 64 || s.chars().count() > 512 {
                    return Err(invalid(
                        "metadata",
                        format!("metadata.{k}: keys are at most 64 characters, values at most 512"),
                    ));
                }
            }
            Some(Value::Object(o.clone()).to_string())
        }
        Some(v) => {
            return Err(invalid(
                "metadata",
                format!(
                    "metadata must be an object of strings, got {}",
                    fields::type_name(v)
                ),
            ));
        }
    };
    Ok(Attribution { user, metadata })
}

/// The request's log span: its route, model and attribution, so every log line of the
/// request carries them; one `request attributed` event records them when present.
pub(in crate::http) fn span(route: &'static str, model: &str, a: &Attribution) -> tracing::Span {
    let span = tracing::info_span!(
        "openai",
        route,
        model,
        user = a.user.as_deref(),
        metadata = a.metadata.as_deref()
    );
    if a.user.is_some() || a.metadata.is_some() {
        span.in_scope(|| tracing::info!("request attributed"));
    }
    span
}

#[cfg(test)]
mod tests;
