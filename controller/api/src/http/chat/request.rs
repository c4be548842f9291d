//! Reading a chat or completion request body: stream options, sampling, messages, prompt,
//! and the fields refused rather than ignored.

use super::*;

/// Stream options of a request.
#[derive(Debug, Clone, Copy)]
pub(super) struct StreamOpts {
    pub(super) stream: bool,
    pub(super) include_usage: bool,
}

/// Reads `stream` and `stream_options.include_usage`.
pub(super) fn stream_opts(body: &Map<String, Value>) -> Result<StreamOpts, ApiError> {
    let stream = fields::opt_bool(body, "stream")?.unwrap_or(false);
    let include_usage = match fields::get(body, "stream_options") {
        None => false,
        Some(Value::Object(o)) => fields::opt_bool(o, "include_usage")
            .map_err(|e| invalid("stream_options", e.message))?
            .unwrap_or(false),
        Some(v) => {
            return Err(invalid(
                "stream_options",
                format!(
                    "stream_options must be an object, got {}",
                    fields::type_name(v)
                ),
            ));
        }
    };
    Ok(StreamOpts {
        stream,
        include_usage,
    })
}

/// Sampling parameters of a chat or completion request (OpenAI defaults: temperature 1,
/// top_p 1; no max_tokens = the model's default).
pub(super) fn sampling(
    body: &Map<String, Value>,
    st: &AppState,
) -> Result<SamplingParams, ApiError> {
    let temperature = fields::opt_f64(body, "temperature")?.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(invalid(
            "temperature",
            format!("temperature must be between 0 and 2, got {temperature}"),
        ));
    }
    let top_p = fields::opt_f64(body, "top_p")?.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(invalid(
            "top_p",
            format!("top_p must be in (0, 1], got {top_p}"),
        ));
    }
    let max_tokens = match fields::opt_positive_u32(body, "max_completion_tokens")? {
        Some(x) => Some(x),
        None => fields::opt_positive_u32(body, "max_tokens")?,
    };
    if let Some(n) = fields::opt_u64(body, "n")?
        && n != 1
    {
        return Err(invalid("n", format!("n must be 1, got {n}")));
    }
    let s = SamplingParams {
        max_tokens: max_tokens.unwrap_or(0),
        temperature: temperature as f32,
        top_p: top_p as f32,
        seed: fields::opt_u64(body, "seed")?,
        stop: fields::opt_string_or_list(body, "stop")?,

        ..Default::default()
    };
    validate::sampling(&s, &st.cfg)?;
    Ok(s)
}

/// Refuses features that would change the answer's meaning if silently ignored.
pub(super) fn refuse_unsupported(body: &Map<String, Value>) -> Result<(), ApiError> {
    for name in ["tools", "functions"] {
        if let Some(v) = fields::get(body, name)
            && v.as_array().is_none_or(|a| !a.is_empty())
        {
            return Err(invalid(
                name,
                format!("{name} (function calling) is not supported"),
            ));
        }
    }
    if let Some(rf) = fields::get(body, "response_format") {
        let kind = rf.get("type").and_then(Value::as_str).unwrap_or("");
        if kind != "text" {
            return Err(invalid(
                "response_format",
                format!("response_format type '{kind}' is not supported (only 'text')"),
            ));
        }
    }
    if fields::opt_bool(body, "logprobs")? == Some(true) {
        return Err(invalid("logprobs", "logprobs are not supported"));
    }
    if fields::opt_bool(body, "echo")? == Some(true) {
        return Err(invalid("echo", "echo is not supported"));
    }
    if let Some(b) = fields::opt_u64(body, "best_of")?
        && b != 1
    {
        return Err(invalid("best_of", "best_of must be 1"));
    }
    if fields::get(body, "audio").is_some() {
        return Err(invalid("audio", "audio output is not supported"));
    }
    if fields::opt_string(body, "suffix")?.is_some_and(|s| !s.is_empty()) {
        return Err(invalid("suffix", "suffix is not supported"));
    }
    Ok(())
}

/// The text of a message's `content`: a string, or an array of text parts.
pub(super) fn content_text(i: usize, role: &str, v: Option<&Value>) -> Result<String, ApiError> {
    match v {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) if role == "assistant" => Ok(String::new()),
        None | Some(Value::Null) => Err(invalid(
            "messages",
            format!("messages[{i}].content is required"),
        )),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            for (j, p) in parts.iter().enumerate() {
                let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
                match (kind, p.get("text").and_then(Value::as_str)) {
                    ("text", Some(t)) => out.push_str(t),
                    ("text", None) => {
                        return Err(invalid(
                            "messages",
                            format!("messages[{i}].content[{j}].text must be a string"),
                        ));
                    }
                    _ => {
                        return Err(invalid(
                            "messages",
                            format!(
                                "messages[{i}].content[{j}] of type '{kind}' is not supported (only 'text' parts)"
                            ),
                        ));
                    }
                }
            }
            Ok(out)
        }
        Some(other) => Err(invalid(
            "messages",
            format!(
                "messages[{i}].content must be a string or an array of text parts, got {}",
                fields::type_name(other)
            ),
        )),
    }
}

/// `messages` as protocol messages (`developer` reads as `system`).
pub(super) fn messages(body: &Map<String, Value>) -> Result<Vec<ChatMessage>, ApiError> {
    let items = match fields::get(body, "messages") {
        Some(Value::Array(a)) => a,
        Some(v) => {
            return Err(invalid(
                "messages",
                format!("messages must be an array, got {}", fields::type_name(v)),
            ));
        }
        None => return Err(invalid("messages", "messages is required")),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let Value::Object(m) = m else {
                return Err(invalid(
                    "messages",
                    format!("messages[{i}] must be an object"),
                ));
            };
            let role = match m.get("role") {
                Some(Value::String(r)) if r == "developer" => "system".to_string(),
                Some(Value::String(r)) => r.clone(),
                _ => {
                    return Err(invalid(
                        "messages",
                        format!("messages[{i}].role must be a string"),
                    ));
                }
            };
            if m.get("tool_calls").is_some_and(|v| !v.is_null()) {
                return Err(invalid(
                    "messages",
                    format!("messages[{i}].tool_calls is not supported"),
                ));
            }
            let content = content_text(i, &role, m.get("content"))?;
            Ok(ChatMessage { role, content })
        })
        .collect()
}

/// The prompt of `/v1/completions`: a string or an array holding one string.
pub(super) fn prompt(body: &Map<String, Value>) -> Result<String, ApiError> {
    let inputs = fields::text_inputs(body, "prompt")?;
    match <[String; 1]>::try_from(inputs) {
        Ok([p]) => Ok(p),
        Err(v) => Err(invalid(
            "prompt",
            format!("prompt must hold exactly one string, got {}", v.len()),
        )),
    }
}
