//! `POST /v1/chat/completions` and `POST /v1/completions`, non-streaming and streaming
//! (server-sent events: `data: {chunk}` lines ending with `data: [DONE]`).

use std::convert::Infallible;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Map, Value, json};
use switchyard_proto::v1::{
    ChatMessage, GenerateChunk, GenerateRequest, SamplingParams, StageTrace,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::error::{HttpError, for_model};
use super::extract::JsonBody;
use super::{AppState, fields, trace, unix_now};
use crate::inference::{ApiError, GenerateStream};
use crate::validate::{self, invalid};

/// Which OpenAI endpoint shape to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Chat,
    Text,
}

/// Stream options of a request.
#[derive(Debug, Clone, Copy)]
struct StreamOpts {
    stream: bool,
    include_usage: bool,
}

/// Reads `stream` and `stream_options.include_usage`.
fn stream_opts(body: &Map<String, Value>) -> Result<StreamOpts, ApiError> {
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
fn sampling(body: &Map<String, Value>, st: &AppState) -> Result<SamplingParams, ApiError> {
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
    };
    validate::sampling(&s, &st.cfg)?;
    Ok(s)
}

/// Refuses features that would change the answer's meaning if silently ignored.
fn refuse_unsupported(body: &Map<String, Value>) -> Result<(), ApiError> {
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
fn content_text(i: usize, role: &str, v: Option<&Value>) -> Result<String, ApiError> {
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
fn messages(body: &Map<String, Value>) -> Result<Vec<ChatMessage>, ApiError> {
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
fn prompt(body: &Map<String, Value>) -> Result<String, ApiError> {
    let inputs = fields::text_inputs(body, "prompt")?;
    match <[String; 1]>::try_from(inputs) {
        Ok([p]) => Ok(p),
        Err(v) => Err(invalid(
            "prompt",
            format!("prompt must hold exactly one string, got {}", v.len()),
        )),
    }
}

/// Identity of one response.
#[derive(Debug, Clone)]
struct Ids {
    id: String,
    created: u64,
    flavor: Flavor,
}

impl Ids {
    fn new(flavor: Flavor) -> Ids {
        let prefix = match flavor {
            Flavor::Chat => "chatcmpl",
            Flavor::Text => "cmpl",
        };
        Ids {
            id: format!("{prefix}-{}", uuid::Uuid::new_v4().simple()),
            created: unix_now(),
            flavor,
        }
    }

    fn usage(prompt: u32, completion: u32) -> Value {
        json!({
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        })
    }

    /// One streaming chunk; `delta` is the chat delta or the text.
    fn chunk(&self, model: &str, delta: Value, finish: Option<&str>) -> Value {
        match self.flavor {
            Flavor::Chat => json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": model, "system_fingerprint": null,
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            }),
            Flavor::Text => json!({
                "id": self.id, "object": "text_completion", "created": self.created,
                "model": model, "system_fingerprint": null,
                "choices": [{"index": 0, "text": delta, "logprobs": null, "finish_reason": finish}],
            }),
        }
    }

    fn text_delta(&self, text: &str) -> Value {
        match self.flavor {
            Flavor::Chat => json!({"content": text}),
            Flavor::Text => json!(text),
        }
    }

    /// The final chunk's delta (empty for chat, "" for text).
    fn empty_delta(&self) -> Value {
        match self.flavor {
            Flavor::Chat => json!({}),
            Flavor::Text => json!(""),
        }
    }
}

/// What a finished generation produced.
#[derive(Debug, Default)]
struct Outcome {
    text: String,
    finish_reason: Option<String>,
    prompt_tokens: u32,
    completion_tokens: u32,
    trace: Option<StageTrace>,
}

impl Outcome {
    /// Folds one chunk in; returns its text.
    fn absorb(&mut self, c: GenerateChunk) -> String {
        if c.finish_reason.is_some() {
            self.finish_reason = c.finish_reason;
        }
        self.prompt_tokens = self.prompt_tokens.max(c.prompt_tokens);
        self.completion_tokens = self.completion_tokens.max(c.completion_tokens);
        if c.trace.is_some() {
            self.trace = c.trace;
        }
        c.text
    }

    fn model(&self, requested: &str) -> String {
        self.trace
            .as_ref()
            .map(|t| t.model.clone())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| requested.to_string())
    }

    fn switchyard(&self) -> Value {
        json!({"trace": self.trace.iter().map(trace::json).collect::<Vec<_>>()})
    }
}

/// The next chunk before `deadline`.
async fn next_chunk(
    st: &AppState,
    stream: &mut GenerateStream,
    deadline: Instant,
) -> Result<Option<GenerateChunk>, ApiError> {
    match tokio::time::timeout_at(deadline.into(), stream.next()).await {
        Ok(Some(r)) => r.map(Some),
        Ok(None) => Ok(None),
        Err(_) => Err(st.timeout_error()),
    }
}

pub(crate) async fn chat_completions(
    State(st): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Response, HttpError> {
    let started = Instant::now();
    let model = fields::req_string(&body, "model")?;
    validate::model(&model)?;
    let msgs = messages(&body)?;
    validate::messages(&msgs, &st.cfg)?;
    refuse_unsupported(&body)?;
    let sampling = sampling(&body, &st)?;
    let opts = stream_opts(&body)?;
    let deadline = st.deadline();
    let req = GenerateRequest {
        model: model.clone(),
        messages: msgs,
        sampling: Some(sampling),
    };
    let stream = st
        .until(deadline, st.inf.generate(req, deadline))
        .await
        .map_err(for_model)?;
    respond(
        st,
        Ids::new(Flavor::Chat),
        model,
        stream,
        opts,
        deadline,
        started,
    )
    .await
}

pub(crate) async fn completions(
    State(st): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Response, HttpError> {
    let started = Instant::now();
    let model = fields::req_string(&body, "model")?;
    validate::model(&model)?;
    let prompt = prompt(&body)?;
    validate::prompt(&prompt, &st.cfg)?;
    refuse_unsupported(&body)?;
    let sampling = sampling(&body, &st)?;
    let opts = stream_opts(&body)?;
    let deadline = st.deadline();
    let stream = st
        .until(
            deadline,
            st.inf.complete(model.clone(), prompt, sampling, deadline),
        )
        .await
        .map_err(for_model)?;
    respond(
        st,
        Ids::new(Flavor::Text),
        model,
        stream,
        opts,
        deadline,
        started,
    )
    .await
}

/// Answers with the whole completion, or streams it. The first chunk is awaited before the
/// response starts so that early failures (unknown model, queue full) keep their status.
async fn respond(
    st: AppState,
    ids: Ids,
    model: String,
    mut stream: GenerateStream,
    opts: StreamOpts,
    deadline: Instant,
    started: Instant,
) -> Result<Response, HttpError> {
    let first = next_chunk(&st, &mut stream, deadline)
        .await
        .map_err(for_model)?;
    if opts.stream {
        let (tx, rx) = mpsc::channel::<Event>(64);
        tokio::spawn(drive_stream(
            st, ids, model, stream, first, opts, deadline, tx,
        ));
        let body = ReceiverStream::new(rx).map(Ok::<_, Infallible>);
        return Ok(Sse::new(body).into_response());
    }
    let mut out = Outcome::default();
    let mut next = first;
    while let Some(c) = next {
        let text = out.absorb(c);
        out.text.push_str(&text);
        if out.finish_reason.is_some() {
            break;
        }
        next = next_chunk(&st, &mut stream, deadline)
            .await
            .map_err(for_model)?;
    }
    let used = out.model(&model);
    let finish = out.finish_reason.clone().unwrap_or_else(|| "stop".into());
    let choice = match ids.flavor {
        Flavor::Chat => json!({
            "index": 0, "message": {"role": "assistant", "content": out.text},
            "logprobs": null, "finish_reason": finish,
        }),
        Flavor::Text => json!({
            "index": 0, "text": out.text, "logprobs": null, "finish_reason": finish,
        }),
    };
    let object = match ids.flavor {
        Flavor::Chat => "chat.completion",
        Flavor::Text => "text_completion",
    };
    let body = json!({
        "id": ids.id, "object": object, "created": ids.created, "model": used,
        "system_fingerprint": null,
        "choices": [choice],
        "usage": Ids::usage(out.prompt_tokens, out.completion_tokens),
        "switchyard": out.switchyard(),
    });
    let mut headers = trace::headers(out.trace.iter());
    trace::put_total(&mut headers, started);
    Ok((headers, Json(body)).into_response())
}

fn event(v: &Value) -> Event {
    Event::default().data(v.to_string())
}

/// Feeds SSE events to `tx` until the generation ends, the deadline passes or the client
/// goes away (a failed send drops the generation stream, which cancels it).
#[allow(clippy::too_many_arguments)]
async fn drive_stream(
    st: AppState,
    ids: Ids,
    model: String,
    mut stream: GenerateStream,
    first: Option<GenerateChunk>,
    opts: StreamOpts,
    deadline: Instant,
    tx: mpsc::Sender<Event>,
) {
    let with_usage = |mut v: Value| {
        if opts.include_usage {
            v["usage"] = Value::Null;
        }
        v
    };
    let mut out = Outcome::default();
    if ids.flavor == Flavor::Chat {
        let role = with_usage(ids.chunk(&model, json!({"role": "assistant", "content": ""}), None));
        if tx.send(event(&role)).await.is_err() {
            return;
        }
    }
    let mut next = first;
    while let Some(c) = next {
        let text = out.absorb(c);
        if !text.is_empty() {
            let v = with_usage(ids.chunk(&out.model(&model), ids.text_delta(&text), None));
            if tx.send(event(&v)).await.is_err() {
                return;
            }
        }
        if out.finish_reason.is_some() {
            break;
        }
        next = match next_chunk(&st, &mut stream, deadline).await {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(event(&HttpError::from(e).body())).await;
                return;
            }
        };
    }
    drop(stream);
    let used = out.model(&model);
    let finish = out.finish_reason.clone().unwrap_or_else(|| "stop".into());
    let mut last = with_usage(ids.chunk(&used, ids.empty_delta(), Some(&finish)));
    last["switchyard"] = out.switchyard();
    if tx.send(event(&last)).await.is_err() {
        return;
    }
    if opts.include_usage {
        let mut u = ids.chunk(&used, Value::Null, None);
        u["choices"] = json!([]);
        u["usage"] = Ids::usage(out.prompt_tokens, out.completion_tokens);
        if tx.send(event(&u)).await.is_err() {
            return;
        }
    }
    let _ = tx.send(Event::default().data("[DONE]")).await;
}
