//! Request validation shared by the HTTP and gRPC APIs, on the protocol types: the same bad
//! request is refused with the same message whichever API it came through.

use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::{ChatMessage, SamplingParams};

use crate::config::ApiConfig;
use crate::inference::ApiError;

/// Chat roles the generators understand (`tool`: a function's result, for engines only —
/// placement sends conversations holding tool messages to engines).
pub const ROLES: &[&str] = &["system", "user", "assistant", "tool"];

/// An `InvalidArgument` error naming `param`.
pub(crate) fn invalid(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorClass::InvalidArgument, message).with_param(param)
}

/// A model name is required (`auto` is a model name for generation).
pub fn model(model: &str) -> Result<(), ApiError> {
    if model.trim().is_empty() {
        return Err(invalid("model", "model is required"));
    }
    Ok(())
}

/// Texts to embed/classify/index: at least one, at most `max_inputs`, none empty, none
/// longer than `max_input_chars`.
pub fn inputs(inputs: &[String], param: &str, cfg: &ApiConfig) -> Result<(), ApiError> {
    if inputs.is_empty() {
        return Err(invalid(param, format!("{param} must not be empty")));
    }
    if inputs.len() > cfg.max_inputs {
        return Err(invalid(
            param,
            format!(
                "too many inputs: {} is over the limit max_inputs ({})",
                inputs.len(),
                cfg.max_inputs
            ),
        ));
    }
    for (i, s) in inputs.iter().enumerate() {
        if s.is_empty() {
            return Err(invalid(param, format!("{param}[{i}] must not be empty")));
        }
        let chars = s.chars().count();
        if chars > cfg.max_input_chars {
            return Err(invalid(
                param,
                format!(
                    "{param}[{i}] has {chars} characters, over the limit max_input_chars ({})",
                    cfg.max_input_chars
                ),
            ));
        }
    }
    Ok(())
}

/// Chat messages: non-empty, known roles, content within `max_input_chars`, at least one
/// user message.
pub fn messages(messages: &[ChatMessage], cfg: &ApiConfig) -> Result<(), ApiError> {
    if messages.is_empty() {
        return Err(invalid("messages", "messages must not be empty"));
    }
    for (i, m) in messages.iter().enumerate() {
        if !ROLES.contains(&m.role.as_str()) {
            return Err(invalid(
                "messages",
                format!(
                    "messages[{i}].role '{}' is not supported (use one of: {})",
                    m.role,
                    ROLES.join(", ")
                ),
            ));
        }
        let chars = m.content.chars().count();
        if chars > cfg.max_input_chars {
            return Err(invalid(
                "messages",
                format!(
                    "messages[{i}].content has {chars} characters, over the limit max_input_chars ({})",
                    cfg.max_input_chars
                ),
            ));
        }
    }
    if !messages.iter().any(|m| m.role == "user") {
        return Err(invalid(
            "messages",
            "messages must contain at least one message with role 'user'",
        ));
    }
    Ok(())
}

/// A prompt for a completion or the pipeline.
pub fn prompt(prompt: &str, cfg: &ApiConfig) -> Result<(), ApiError> {
    if prompt.trim().is_empty() {
        return Err(invalid("prompt", "prompt must not be empty"));
    }
    let chars = prompt.chars().count();
    if chars > cfg.max_input_chars {
        return Err(invalid(
            "prompt",
            format!(
                "prompt has {chars} characters, over the limit max_input_chars ({})",
                cfg.max_input_chars
            ),
        ));
    }
    Ok(())
}

/// Sampling ranges: temperature 0..=2, top_p (0, 1] (0 = unset, read as 1 on gRPC where
/// proto3 cannot tell unset from 0), max_tokens ≤ the limit (0 = the model's default), at
/// most 4 non-empty stop sequences, penalties -2..=2, repeat_penalty ≥ 0, repeat_last_n
/// ≥ -1, logit bias -100..=100 on at most [`MAX_LOGIT_BIAS`] tokens.
pub fn sampling(s: &SamplingParams, cfg: &ApiConfig) -> Result<(), ApiError> {
    if !s.temperature.is_finite() || !(0.0..=2.0).contains(&s.temperature) {
        return Err(invalid(
            "temperature",
            format!("temperature must be between 0 and 2, got {}", s.temperature),
        ));
    }
    if !s.top_p.is_finite() || !(0.0..=1.0).contains(&s.top_p) {
        return Err(invalid(
            "top_p",
            format!("top_p must be in (0, 1], got {}", s.top_p),
        ));
    }
    if s.max_tokens > cfg.max_tokens {
        return Err(invalid(
            "max_tokens",
            format!(
                "max_tokens {} is over the limit max_tokens ({})",
                s.max_tokens, cfg.max_tokens
            ),
        ));
    }
    if s.stop.len() > 4 {
        return Err(invalid(
            "stop",
            format!("at most 4 stop sequences are allowed, got {}", s.stop.len()),
        ));
    }
    if s.stop.iter().any(|x| x.is_empty()) {
        return Err(invalid("stop", "stop sequences must not be empty"));
    }
    for (name, v) in [
        ("presence_penalty", s.presence_penalty),
        ("frequency_penalty", s.frequency_penalty),
    ] {
        if !v.is_finite() || !(-2.0..=2.0).contains(&v) {
            return Err(invalid(
                name,
                format!("{name} must be between -2 and 2, got {v}"),
            ));
        }
    }
    if !s.repeat_penalty.is_finite() || s.repeat_penalty < 0.0 {
        return Err(invalid(
            "repeat_penalty",
            format!(
                "repeat_penalty must be ≥ 0 (1 = off), got {}",
                s.repeat_penalty
            ),
        ));
    }
    if s.repeat_last_n < -1 {
        return Err(invalid(
            "repeat_last_n",
            format!(
                "repeat_last_n must be ≥ -1 (-1 = the whole context), got {}",
                s.repeat_last_n
            ),
        ));
    }
    if s.logit_bias.len() > MAX_LOGIT_BIAS {
        return Err(invalid(
            "logit_bias",
            format!(
                "logit_bias may name at most {MAX_LOGIT_BIAS} tokens, got {}",
                s.logit_bias.len()
            ),
        ));
    }
    if let Some((id, b)) = s
        .logit_bias
        .iter()
        .find(|(_, b)| !b.is_finite() || !(-100.0..=100.0).contains(*b))
    {
        return Err(invalid(
            "logit_bias",
            format!("logit_bias values must be between -100 and 100, got {b} for token {id}"),
        ));
    }
    Ok(())
}

/// Most tokens one `logit_bias` may name.
pub const MAX_LOGIT_BIAS: usize = 1024;

/// `top_k` of a retrieval: 1..=max_inputs (0 = the pipeline's default).
pub fn top_k(top_k: u32, cfg: &ApiConfig) -> Result<(), ApiError> {
    if top_k as usize > cfg.max_inputs {
        return Err(invalid(
            "top_k",
            format!(
                "top_k {top_k} is over the limit max_inputs ({})",
                cfg.max_inputs
            ),
        ));
    }
    Ok(())
}

/// Documents to store: at least one, at most `max_inputs`, none empty or blank. Their size
/// is checked by the store (`retrieval.max_document_bytes`), not by `max_input_chars`: a
/// document is chunked before anything is embedded.
pub fn documents(texts: &[&str], cfg: &ApiConfig) -> Result<(), ApiError> {
    let n = texts.len();
    if n == 0 {
        return Err(invalid("documents", "documents must not be empty"));
    }
    if n > cfg.max_inputs {
        return Err(invalid(
            "documents",
            format!(
                "too many documents: {n} is over the limit max_inputs ({})",
                cfg.max_inputs
            ),
        ));
    }
    for (i, t) in texts.iter().enumerate() {
        if t.trim().is_empty() {
            return Err(invalid("documents", format!("documents[{i}] is empty")));
        }
    }
    Ok(())
}

/// A collection name: empty (the default collection) or 1–64 letters, digits, `-`, `_`, `.`.
pub fn collection(name: &str) -> Result<(), ApiError> {
    let ok = name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(invalid(
            "collection",
            format!("invalid collection name '{name}': use 1-64 letters, digits, '-', '_' or '.'"),
        ));
    }
    Ok(())
}

/// A retrieval score threshold: a cosine similarity, -1..=1.
pub fn min_score(score: Option<f32>) -> Result<(), ApiError> {
    match score {
        Some(s) if !s.is_finite() || !(-1.0..=1.0).contains(&s) => Err(invalid(
            "min_score",
            format!("min_score must be between -1 and 1, got {s}"),
        )),
        _ => Ok(()),
    }
}

/// A document search: a query like a prompt, `k` within `max_inputs`, a valid collection and
/// threshold.
pub fn search(
    query: &str,
    k: u32,
    collection_name: &str,
    score: Option<f32>,
    cfg: &ApiConfig,
) -> Result<(), ApiError> {
    if query.trim().is_empty() {
        return Err(invalid("query", "query must not be empty"));
    }
    let chars = query.chars().count();
    if chars > cfg.max_input_chars {
        return Err(invalid(
            "query",
            format!(
                "query has {chars} characters, over the limit max_input_chars ({})",
                cfg.max_input_chars
            ),
        ));
    }
    if k as usize > cfg.max_inputs {
        return Err(invalid(
            "k",
            format!("k {k} is over the limit max_inputs ({})", cfg.max_inputs),
        ));
    }
    collection(collection_name)?;
    min_score(score)
}

#[cfg(test)]
mod tests;
