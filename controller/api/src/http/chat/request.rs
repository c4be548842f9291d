//! Reading a chat or completion request body: stream options, sampling, messages, prompt
//! (which fields are accepted at all: [`super::accepted`]).

use std::collections::HashMap;

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
/// top_p 1, no penalties; no max_tokens = the model's default), all honoured by the native
/// decoder: penalties and `logit_bias` adjust its logits, `top_k` (an extension, as in vLLM)
/// limits its choice.
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
    let top_k = fields::opt_u64(body, "top_k")?.unwrap_or(0);
    let s = SamplingParams {
        max_tokens: max_tokens.unwrap_or(0),
        temperature: temperature as f32,
        top_p: top_p as f32,
        seed: fields::opt_u64(body, "seed")?,
        stop: fields::opt_string_or_list(body, "stop")?,
        top_k: u32::try_from(top_k).unwrap_or(u32::MAX),
        presence_penalty: fields::opt_f64(body, "presence_penalty")?.unwrap_or(0.0) as f32,
        frequency_penalty: fields::opt_f64(body, "frequency_penalty")?.unwrap_or(0.0) as f32,
        logit_bias: logit_bias(body)?,
        ..Default::default()
    };
    validate::sampling(&s, &st.cfg)?;
    Ok(s)
}

/// `logit_bias`: an object of token ids (as strings) to biases.
fn logit_bias(body: &Map<String, Value>) -> Result<HashMap<u32, f32>, ApiError> {
    match fields::get(body, "logit_bias") {
        None => Ok(HashMap::new()),
        Some(Value::Object(o)) => o
            .iter()
            .map(|(k, v)| {
                let id = k.parse::<u32>().map_err(|_| {
                    invalid(
                        "logit_bias",
                        format!("logit_bias keys must be token ids, got '{k}'"),
                    )
                })?;
                let bias = v.as_f64().ok_or_else(|| {
                    invalid(
                        "logit_bias",
                        format!(
                            "logit_bias[{k}] must be a number, got {}",
                            fields::type_name(v)
                        ),
                    )
                })?;
                Ok((id, bias as f32))
            })
            .collect(),
        Some(v) => Err(invalid(
            "logit_bias",
            format!(
                "logit_bias must be an object of token ids to numbers, got {}",
                fields::type_name(v)
            ),
        )),
    }
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
                if let Value::Object(part) = p {
                    fields::only(
                        part,
                        &format!("messages[{i}].content[{j}]."),
                        &["type", "text"],
                        &[],
                    )
                    .map_err(|e| invalid("messages", e.message))?;
                }
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
            super::accepted::check_message(i, m)?;
            let tool_calls_json = match m.get("tool_calls") {
                Some(v) if role == "assistant" => super::tools::message_tool_calls(i, v)?,
                Some(_) => {
                    return Err(invalid(
                        "messages",
                        format!("messages[{i}].tool_calls is for assistant messages only"),
                    ));
                }
                None => String::new(),
            };
            let tool_call_id = match m.get("tool_call_id") {
                Some(Value::String(id)) if role == "tool" => id.clone(),
                None if role == "tool" => {
                    return Err(invalid(
                        "messages",
                        format!("messages[{i}] (role 'tool') needs tool_call_id"),
                    ));
                }
                None => String::new(),
                Some(_) => {
                    return Err(invalid(
                        "messages",
                        format!(
                            "messages[{i}].tool_call_id must be a string, on 'tool' messages only"
                        ),
                    ));
                }
            };
            let content = content_text(i, &role, m.get("content"))?;
            Ok(ChatMessage {
                role,
                content,
                tool_calls_json,
                tool_call_id,
            })
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
