//! The OpenAI wire protocol: the model list (`/v1/models`) and a streamed
//! `/v1/chat/completions` (server-sent events, usage in the last chunk).

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Map, Value, json};
use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::{ChatMessage, EngineOptions, SamplingParams};

use super::endpoint::{Endpoint, EngineModel};
use super::{Done, EngineError, LineReader, Sink};

/// The models an OpenAI-compatible server lists (all taken as generation models, except
/// those another Switchyard marks as embed/classify, and its `auto`).
pub(super) async fn list(
    ep: &Endpoint,
) -> Result<(Vec<EngineModel>, HashMap<String, bool>), EngineError> {
    let v = ep.get_json("/v1/models").await?;
    let models = v["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| {
            m["switchyard"]["stage"]
                .as_str()
                .is_none_or(|s| s == "generate")
        })
        .filter_map(|m| m["id"].as_str())
        .filter(|id| *id != "auto")
        .map(|id| EngineModel {
            name: id.to_string(),
            remote: id.to_string(),
            ..Default::default()
        })
        .collect();
    Ok((models, HashMap::new()))
}

/// One message as OpenAI has it, tool calls and tool results included.
fn message(m: &ChatMessage) -> Value {
    let mut v = json!({"role": m.role, "content": m.content});
    if let Ok(calls) = serde_json::from_str::<Value>(&m.tool_calls_json) {
        v["tool_calls"] = calls;
    }
    if !m.tool_call_id.is_empty() {
        v["tool_call_id"] = json!(m.tool_call_id);
    }
    v
}

/// The request body. Extensions (`top_k`, `repeat_penalty`, which vLLM and llama-server
/// read) are sent only when set; function calling and structured output verbatim.
pub(super) fn body(
    remote: &str,
    messages: &[ChatMessage],
    s: &SamplingParams,
    opts: Option<&EngineOptions>,
) -> Value {
    let msgs: Vec<Value> = messages.iter().map(message).collect();
    let mut b = Map::new();
    if let Some(o) = opts {
        for (name, raw) in [
            ("tools", &o.tools_json),
            ("tool_choice", &o.tool_choice_json),
            ("response_format", &o.response_format_json),
        ] {
            if let Ok(v) = serde_json::from_str::<Value>(raw) {
                b.insert(name.into(), v);
            }
        }
        if let Some(p) = o.parallel_tool_calls {
            b.insert("parallel_tool_calls".into(), json!(p));
        }
    }
    b.insert("model".into(), json!(remote));
    b.insert("messages".into(), json!(msgs));
    b.insert("stream".into(), json!(true));
    b.insert("stream_options".into(), json!({"include_usage": true}));
    b.insert("max_tokens".into(), json!(super::max_tokens(s)));
    b.insert("temperature".into(), json!(s.temperature));
    if s.top_p > 0.0 {
        b.insert("top_p".into(), json!(s.top_p));
    }
    if let Some(seed) = s.seed {
        b.insert("seed".into(), json!(seed));
    }
    if !s.stop.is_empty() {
        b.insert("stop".into(), json!(s.stop));
    }
    if s.presence_penalty != 0.0 {
        b.insert("presence_penalty".into(), json!(s.presence_penalty));
    }
    if s.frequency_penalty != 0.0 {
        b.insert("frequency_penalty".into(), json!(s.frequency_penalty));
    }
    if !s.logit_bias.is_empty() {
        let bias: Map<String, Value> = s
            .logit_bias
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        b.insert("logit_bias".into(), Value::Object(bias));
    }
    if s.top_k > 0 {
        b.insert("top_k".into(), json!(s.top_k));
    }
    if s.repeat_penalty > 0.0 && s.repeat_penalty != 1.0 && s.repeat_last_n != 0 {
        b.insert("repeat_penalty".into(), json!(s.repeat_penalty));
        b.insert("repeat_last_n".into(), json!(s.repeat_last_n));
    }
    Value::Object(b)
}

/// Streams a chat completion into `sink`.
pub(super) async fn generate(
    ep: &Endpoint,
    remote: &str,
    messages: &[ChatMessage],
    s: &SamplingParams,
    opts: Option<&EngineOptions>,
    sink: &mut Sink,
) -> Result<Done, EngineError> {
    let resp = ep
        .request(Method::POST, "/v1/chat/completions")
        .json(&body(remote, messages, s, opts))
        .send()
        .await
        .map_err(|e| ep.error(e))?;
    if !resp.status().is_success() {
        return Err(ep.refused(resp).await);
    }
    let mut lines = LineReader::new(resp);
    let mut done = Done::default();
    let mut finished = false;
    while let Some(line) = lines.next(ep).await? {
        let Some(data) = line.strip_prefix("data:").map(str::trim) else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let v: Value = serde_json::from_str(data).map_err(|e| {
            EngineError::new(
                ErrorClass::Unavailable,
                format!(
                    "endpoint {} sent an event that is not JSON: {e}",
                    ep.config().name
                ),
            )
        })?;
        if let Some(err) = v.get("error") {
            return Err(EngineError::new(
                ErrorClass::Unavailable,
                format!("endpoint {} failed mid-stream: {err}", ep.config().name),
            ));
        }
        let choice = &v["choices"][0];
        if let Some(text) = choice["delta"]["content"].as_str()
            && !text.is_empty()
        {
            sink.text(text).await?;
        }
        if let Some(calls) = choice["delta"]["tool_calls"].as_array()
            && !calls.is_empty()
        {
            sink.tool_calls(Value::Array(calls.clone()).to_string())
                .await?;
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            done.finish_reason = f.to_string();
            finished = true;
        }
        if let Some(u) = v["usage"].as_object() {
            done.prompt_tokens = u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0) as u32;
            done.completion_tokens = u
                .get("completion_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0) as u32;
        }
    }
    if !finished {
        return Err(sink.ended_early(ep));
    }
    Ok(done)
}
