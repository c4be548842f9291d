//! Reading Ollama request bodies: which fields are honoured, which are refused (and why),
//! `options` as sampling parameters with Ollama's defaults, `keep_alive`, chat messages.

use std::str::FromStr;
use std::time::Duration;

use serde_json::{Map, Value};
use switchyard_proto::v1::{ChatMessage, SamplingParams};

use crate::config::ApiConfig;
use crate::http::fields;
use crate::inference::{ApiError, KeepAlive};
use crate::validate;
use crate::validate::invalid;

/// Fields Ollama knows that Switchyard does not act on, with the reason given to the client.
/// A field whose value asks for nothing (`false`, `""`, `[]`, `0`) is accepted: doing
/// nothing is acting on it.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "format",
        "format (JSON mode, JSON schema) is accepted on /api/chat, where engines serve it",
    ),
    (
        "tools",
        "tools are accepted on /api/chat, where engines serve them",
    ),
    ("images", "images (multimodal input) are not supported"),
    (
        "raw",
        "raw prompts are not supported: Switchyard always applies the model's chat template",
    ),
    ("template", "prompt template overrides are not supported"),
    (
        "context",
        "context (token history of an earlier /api/generate) is not supported: send the conversation to /api/chat as messages",
    ),
    ("suffix", "suffix (fill-in-the-middle) is not supported"),
    (
        "think",
        "thinking mode is not supported by Switchyard's models",
    ),
    ("logprobs", "logprobs are not supported"),
    ("top_logprobs", "logprobs are not supported"),
    (
        "tool_calls",
        "tool_calls are accepted on assistant messages only",
    ),
    ("tool_name", "tool_name is accepted on tool messages only"),
    ("thinking", "thinking content is not supported"),
    ("width", "image generation is not supported"),
    ("height", "image generation is not supported"),
    ("steps", "image generation is not supported"),
];

/// Options Switchyard honours (everything else is refused, naming it).
pub(super) const OPTIONS: &[&str] = &[
    "temperature",
    "top_p",
    "top_k",
    "num_predict",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "repeat_penalty",
    "repeat_last_n",
    // Switchyard's extension: the user's documents as context (`true` or an object).
    "retrieval",
];

/// Refuses every field of `obj` that is not in `allowed`, naming it as `{at}{field}`.
pub(super) fn only(obj: &Map<String, Value>, at: &str, allowed: &[&str]) -> Result<(), ApiError> {
    fields::only(obj, at, allowed, UNSUPPORTED)
}

/// An error of a `fields` read, renamed to sit under `options.`.
fn in_options(e: ApiError) -> ApiError {
    let param = e.param.clone().unwrap_or_default();
    let message = match e.message.strip_prefix(param.as_str()) {
        Some(rest) => format!("options.{param}{rest}"),
        None => e.message.clone(),
    };
    invalid(&format!("options.{param}"), message)
}

/// `options` as sampling parameters. Unset options take Ollama's defaults (temperature 0.8,
/// top_p 0.9, top_k 40, repeat_penalty 1.1 over the last 64 tokens); `num_predict` unset
/// or -1 means the server's default length.
pub(super) fn sampling(
    body: &Map<String, Value>,
    cfg: &ApiConfig,
) -> Result<SamplingParams, ApiError> {
    let empty = Map::new();
    let o = match fields::get(body, "options") {
        None => &empty,
        Some(Value::Object(o)) => o,
        Some(v) => {
            return Err(invalid(
                "options",
                format!("options must be an object, got {}", fields::type_name(v)),
            ));
        }
    };
    // mirostat 0 is "off", which is what Switchyard does.
    let mut o = o.clone();
    if o.get("mirostat").is_some_and(fields::asks_nothing) {
        o.remove("mirostat");
    }
    for key in o.keys() {
        if !OPTIONS.contains(&key.as_str()) {
            return Err(invalid(
                &format!("options.{key}"),
                format!(
                    "options.{key} is not supported (Switchyard honours: {})",
                    OPTIONS.join(", ")
                ),
            ));
        }
    }
    let f = |name: &str, default: f64| -> Result<f64, ApiError> {
        Ok(fields::opt_f64(&o, name)
            .map_err(in_options)?
            .unwrap_or(default))
    };
    let temperature = f("temperature", 0.8)?;
    let top_p = f("top_p", 0.9)?;
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(invalid(
            "options.top_p",
            format!("options.top_p must be in (0, 1], got {top_p}"),
        ));
    }
    let top_k = match fields::opt_i64(&o, "top_k").map_err(in_options)? {
        None => 40,
        Some(k) if (0..=i64::from(u32::MAX)).contains(&k) => k as u32,
        Some(k) => {
            return Err(invalid(
                "options.top_k",
                format!("options.top_k must be ≥ 0 (0 = off), got {k}"),
            ));
        }
    };
    let max_tokens = match fields::opt_i64(&o, "num_predict").map_err(in_options)? {
        None | Some(-1) => 0,
        Some(n) if n >= 1 && n <= i64::from(cfg.max_tokens) => n as u32,
        Some(n) if n >= 1 => {
            return Err(invalid(
                "options.num_predict",
                format!(
                    "options.num_predict {n} is over the limit max_tokens ({})",
                    cfg.max_tokens
                ),
            ));
        }
        Some(n) => {
            return Err(invalid(
                "options.num_predict",
                format!(
                    "options.num_predict must be ≥ 1, or -1 for the server's default length, got {n}"
                ),
            ));
        }
    };
    let repeat_last_n = match fields::opt_i64(&o, "repeat_last_n").map_err(in_options)? {
        None => 64,
        Some(n) if (-1..=i64::from(i32::MAX)).contains(&n) => n as i32,
        Some(n) => {
            return Err(invalid(
                "options.repeat_last_n",
                format!("options.repeat_last_n must be ≥ -1 (-1 = the whole context), got {n}"),
            ));
        }
    };
    let seed = match fields::opt_i64(&o, "seed").map_err(in_options)? {
        None => None,
        Some(s) if s >= 0 => Some(s as u64),
        Some(s) => {
            return Err(invalid(
                "options.seed",
                format!(
                    "options.seed must be ≥ 0 (Switchyard's sampling is always seeded), got {s}"
                ),
            ));
        }
    };
    let s = SamplingParams {
        max_tokens,
        temperature: temperature as f32,
        top_p: top_p as f32,
        seed,
        stop: fields::opt_string_or_list(&o, "stop").map_err(in_options)?,
        top_k,
        presence_penalty: f("presence_penalty", 0.0)? as f32,
        frequency_penalty: f("frequency_penalty", 0.0)? as f32,
        repeat_penalty: f("repeat_penalty", 1.1)? as f32,
        repeat_last_n,
        logit_bias: Default::default(),
    };
    validate::sampling(&s, cfg).map_err(in_options)?;
    Ok(s)
}

fn from_seconds(secs: f64) -> KeepAlive {
    if secs < 0.0 {
        KeepAlive::Forever
    } else if secs == 0.0 {
        KeepAlive::Unload
    } else {
        KeepAlive::For(Duration::from_secs_f64(secs))
    }
}

/// `keep_alive`: seconds (a number or a numeric string) or a duration string (`"5m"`,
/// `"1h30m"`); 0 unloads the model once it is idle, negative keeps it loaded.
pub(super) fn keep_alive(body: &Map<String, Value>) -> Result<KeepAlive, ApiError> {
    let bad = |what: &str| {
        invalid(
            "keep_alive",
            format!(
                "keep_alive must be seconds or a duration such as \"5m\" or \"1h30m\" (0 = unload, negative = keep loaded), got {what}"
            ),
        )
    };
    match fields::get(body, "keep_alive") {
        None => Ok(KeepAlive::Default),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|x| x.is_finite() && x.abs() < 1e12)
            .map(from_seconds)
            .ok_or_else(|| bad(&n.to_string())),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(KeepAlive::Default),
        Some(Value::String(s)) => {
            if let Ok(x) = s.trim().parse::<f64>() {
                return x
                    .is_finite()
                    .then(|| from_seconds(x))
                    .ok_or_else(|| bad(&format!("'{s}'")));
            }
            let d = jiff::SignedDuration::from_str(s.trim()).map_err(|_| bad(&format!("'{s}'")))?;
            Ok(if d.is_negative() {
                KeepAlive::Forever
            } else if d.is_zero() {
                KeepAlive::Unload
            } else {
                KeepAlive::For(d.unsigned_abs())
            })
        }
        Some(v) => Err(bad(fields::type_name(v))),
    }
}

/// `messages` of `/api/chat` (empty = load or unload the model).
pub(super) fn messages(body: &Map<String, Value>) -> Result<Vec<ChatMessage>, ApiError> {
    let items = match fields::get(body, "messages") {
        None => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(v) => {
            return Err(invalid(
                "messages",
                format!("messages must be an array, got {}", fields::type_name(v)),
            ));
        }
    };
    let mut names = Vec::with_capacity(items.len());
    let mut out = items
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let Value::Object(m) = m else {
                return Err(invalid(
                    "messages",
                    format!("messages[{i}] must be an object"),
                ));
            };
            let role = m.get("role").and_then(Value::as_str).unwrap_or("");
            let allowed: &[&str] = match role {
                "assistant" => &["role", "content", "tool_calls"],
                "tool" => &["role", "content", "tool_name"],
                _ => &["role", "content"],
            };
            only(m, &format!("messages[{i}]."), allowed)?;
            let field = |name: &str| {
                fields::opt_string(m, name)
                    .map_err(|e| invalid("messages", format!("messages[{i}].{}", e.message)))
            };
            let Some(role) = field("role")? else {
                return Err(invalid(
                    "messages",
                    format!("messages[{i}].role is required"),
                ));
            };
            let content = field("content")?.unwrap_or_default();
            names.push(field("tool_name")?);
            let tool_calls_json = match m.get("tool_calls") {
                Some(v) if !fields::asks_nothing(v) => super::tools::assistant_calls(i, v)?,
                _ => String::new(),
            };
            Ok(ChatMessage {
                role,
                content,
                tool_calls_json,
                ..Default::default()
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    super::tools::link_results(&mut out, &names)?;
    Ok(out)
}
