//! Ollama's wire protocol: the model list (`/api/tags`, `/api/ps`, `/api/show` for
//! capabilities) and a streamed `/api/chat` (NDJSON).

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Map, Value, json};
use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::{ChatMessage, EngineOptions, SamplingParams};

use super::endpoint::{Endpoint, EngineModel};
use super::{Done, EngineError, LineReader, Sink};

mod tools;

/// The name clients use for an Ollama model name: `:latest` dropped.
pub(super) fn client_name(remote: &str) -> &str {
    remote.strip_suffix(":latest").unwrap_or(remote)
}

/// The generation models an Ollama server lists, and which of them are loaded. `known`
/// caches, per remote name, whether it can generate (`/api/show` capabilities); new
/// answers are returned for the cache. `auto` (another Switchyard's router) is left out:
/// the name is this cluster's own.
pub(super) async fn list(
    ep: &Endpoint,
    known: &HashMap<String, bool>,
) -> Result<(Vec<EngineModel>, HashMap<String, bool>), EngineError> {
    let tags = ep.get_json("/api/tags").await?;
    let ps = ep.get_json("/api/ps").await?;
    let loaded: Vec<&str> = ps["models"]
        .as_array()
        .map(|a| a.iter().filter_map(remote_of).collect())
        .unwrap_or_default();
    let mut learned = HashMap::new();
    let mut models = Vec::new();
    for m in tags["models"].as_array().into_iter().flatten() {
        let Some(remote) = remote_of(m) else { continue };
        if client_name(remote) == "auto" {
            continue;
        }
        let completion = match known.get(remote) {
            Some(c) => *c,
            None => {
                let show = ep
                    .send_json(
                        ep.request(Method::POST, "/api/show")
                            .json(&json!({"model": remote})),
                    )
                    .await?;
                // Servers older than capabilities list generation models only.
                let c = show["capabilities"]
                    .as_array()
                    .is_none_or(|caps| caps.iter().any(|c| c == "completion"));
                learned.insert(remote.to_string(), c);
                c
            }
        };
        if !completion {
            continue;
        }
        models.push(EngineModel {
            name: client_name(remote).to_string(),
            remote: remote.to_string(),
            size_bytes: m["size"].as_u64().unwrap_or(0),
            loaded: loaded.contains(&remote),
        });
    }
    Ok((models, learned))
}

fn remote_of(m: &Value) -> Option<&str> {
    m["model"].as_str().or_else(|| m["name"].as_str())
}

/// Ollama `options` for `s`. Switchyard's zeros mean "off", so the repetition penalty is
/// sent as 1 (off) rather than left to Ollama's default of 1.1.
pub(super) fn options(s: &SamplingParams) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("temperature".into(), json!(s.temperature));
    if s.top_p > 0.0 {
        o.insert("top_p".into(), json!(s.top_p));
    }
    if s.top_k > 0 {
        o.insert("top_k".into(), json!(s.top_k));
    }
    o.insert("num_predict".into(), json!(super::max_tokens(s)));
    if !s.stop.is_empty() {
        o.insert("stop".into(), json!(s.stop));
    }
    if let Some(seed) = s.seed {
        o.insert("seed".into(), json!(seed));
    }
    if s.presence_penalty != 0.0 {
        o.insert("presence_penalty".into(), json!(s.presence_penalty));
    }
    if s.frequency_penalty != 0.0 {
        o.insert("frequency_penalty".into(), json!(s.frequency_penalty));
    }
    if s.repeat_penalty > 0.0 && s.repeat_penalty != 1.0 && s.repeat_last_n != 0 {
        o.insert("repeat_penalty".into(), json!(s.repeat_penalty));
        o.insert("repeat_last_n".into(), json!(s.repeat_last_n));
    } else {
        o.insert("repeat_penalty".into(), json!(1.0));
    }
    o
}

/// Streams a chat from `/api/chat` into `sink`.
pub(super) async fn generate(
    ep: &Endpoint,
    remote: &str,
    messages: &[ChatMessage],
    s: &SamplingParams,
    opts: Option<&EngineOptions>,
    sink: &mut Sink,
) -> Result<Done, EngineError> {
    if !s.logit_bias.is_empty() {
        return Err(EngineError::new(
            ErrorClass::InvalidArgument,
            format!(
                "logit_bias is not supported by the model's engine (Ollama endpoint {})",
                ep.config().name
            ),
        ));
    }
    let msgs: Vec<Value> = messages.iter().map(tools::message).collect();
    let mut body = Map::new();
    body.insert("model".into(), json!(remote));
    body.insert("messages".into(), json!(msgs));
    body.insert("stream".into(), json!(true));
    body.insert("options".into(), Value::Object(options(s)));
    if let Some(o) = opts {
        tools::apply(&mut body, o, &ep.config().name)?;
    }
    let resp = ep
        .request(Method::POST, "/api/chat")
        .json(&body)
        .send()
        .await
        .map_err(|e| ep.error(e))?;
    if !resp.status().is_success() {
        return Err(ep.refused(resp).await);
    }
    let mut lines = LineReader::new(resp);
    let mut calls = 0;
    while let Some(line) = lines.next(ep).await? {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line).map_err(|e| {
            EngineError::new(
                ErrorClass::Unavailable,
                format!(
                    "endpoint {} sent a line that is not JSON: {e}",
                    ep.config().name
                ),
            )
        })?;
        if let Some(err) = v["error"].as_str() {
            return Err(EngineError::new(
                ErrorClass::Unavailable,
                format!("endpoint {} failed mid-stream: {err}", ep.config().name),
            ));
        }
        if let Some(text) = v["message"]["content"].as_str()
            && !text.is_empty()
        {
            sink.text(text).await?;
        }
        if let Some(c) = v["message"]["tool_calls"].as_array()
            && !c.is_empty()
        {
            sink.tool_calls(tools::deltas(c, &mut calls).to_string())
                .await?;
        }
        if v["done"] == true {
            let reason = v["done_reason"].as_str().unwrap_or("stop");
            return Ok(Done {
                // Ollama says "stop" after tool calls; OpenAI clients look for this.
                finish_reason: if calls > 0 && reason == "stop" {
                    "tool_calls".to_string()
                } else {
                    reason.to_string()
                },
                prompt_tokens: v["prompt_eval_count"].as_u64().unwrap_or(0) as u32,
                completion_tokens: v["eval_count"].as_u64().unwrap_or(0) as u32,
                load_ms: v["load_duration"].as_f64().unwrap_or(0.0) / 1e6,
            });
        }
    }
    Err(sink.ended_early(ep))
}
