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

pub(super) mod accepted;
mod request;
pub(crate) mod tools;

use request::*;
use tracing::Instrument;

/// Which OpenAI endpoint shape to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Chat,
    Text,
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

/// What a finished generation produced (shared with the Ollama routes).
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(super) text: String,
    pub(super) finish_reason: Option<String>,
    pub(super) prompt_tokens: u32,
    pub(super) completion_tokens: u32,
    pub(super) trace: Option<StageTrace>,
    /// Retrieval was asked for, and the chunks given as context (from the last chunk).
    pub(super) retrieval: bool,
    pub(super) sources: Vec<switchyard_proto::v1::RetrievedChunk>,
    /// Whole tool calls (merged from the streamed deltas).
    pub(super) tool_calls: Vec<Value>,
    /// The tool call deltas of the last chunk absorbed, for streaming them on.
    tool_deltas: Option<Value>,
}

impl Outcome {
    /// Folds one chunk in; returns its text.
    pub(super) fn absorb(&mut self, c: GenerateChunk) -> String {
        if c.finish_reason.is_some() {
            self.finish_reason = c.finish_reason;
        }
        self.prompt_tokens = self.prompt_tokens.max(c.prompt_tokens);
        self.completion_tokens = self.completion_tokens.max(c.completion_tokens);
        if c.trace.is_some() {
            self.trace = c.trace;
        }
        if c.retrieval {
            self.retrieval = true;
            self.sources = c.sources;
        }
        self.tool_deltas = None;
        if !c.tool_calls_json.is_empty()
            && let Ok(deltas) = serde_json::from_str::<Value>(&c.tool_calls_json)
        {
            tools::merge_deltas(&mut self.tool_calls, &deltas);
            self.tool_deltas = Some(deltas);
        }
        c.text
    }

    /// The model that ran (from the trace), else `requested`.
    pub(super) fn model(&self, requested: &str) -> String {
        self.trace
            .as_ref()
            .map(|t| t.model.clone())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| requested.to_string())
    }

    /// The `switchyard` extension object: the trace, and with retrieval the sources
    /// (document, chunk, score, source, collection) or why there are none.
    pub(super) fn switchyard(&self) -> Value {
        let mut v = json!({"trace": self.trace.iter().map(trace::json).collect::<Vec<_>>()});
        if self.retrieval {
            v["sources"] = self
                .sources
                .iter()
                .map(|c| {
                    json!({"document_id": c.document_id, "chunk": c.chunk, "score": c.score,
                           "source": c.source, "collection": c.collection})
                })
                .collect();
            if self.sources.is_empty() {
                v["retrieval"] = json!(
                    "no document matched (or the collection is empty): answered without context"
                );
            }
        }
        v
    }
}

/// The next chunk before `deadline`.
pub(super) async fn next_chunk(
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
    accepted::check(&body, accepted::CHAT)?;
    let model = fields::req_string(&body, "model")?;
    validate::model(&model)?;
    let msgs = messages(&body)?;
    validate::messages(&msgs, &st.cfg)?;
    let sampling = sampling(&body, &st)?;
    let engine_options = tools::engine_options(&body)?;
    let opts = stream_opts(&body)?;
    let span = accepted::span("chat", &model, &accepted::attribution(&body)?);
    let deadline = st.deadline();
    let req = GenerateRequest {
        model: model.clone(),
        messages: msgs,
        sampling: Some(sampling),
        engine_options,
        retrieval: fields::retrieval(&body, "retrieval", "")?,
    };
    let stream = st
        .until(deadline, st.inf.generate(req, deadline))
        .instrument(span.clone())
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
    .instrument(span)
    .await
}

pub(crate) async fn completions(
    State(st): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Response, HttpError> {
    let started = Instant::now();
    accepted::check(&body, accepted::TEXT)?;
    let model = fields::req_string(&body, "model")?;
    validate::model(&model)?;
    let prompt = prompt(&body)?;
    validate::prompt(&prompt, &st.cfg)?;
    let sampling = sampling(&body, &st)?;
    let opts = stream_opts(&body)?;
    let span = accepted::span("completions", &model, &accepted::attribution(&body)?);
    let deadline = st.deadline();
    let stream = st
        .until(
            deadline,
            st.inf.complete(model.clone(), prompt, sampling, deadline),
        )
        .instrument(span.clone())
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
    .instrument(span)
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
        tokio::spawn(
            drive_stream(st, ids, model, stream, first, opts, deadline, tx).in_current_span(),
        );
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
        Flavor::Chat => {
            let mut message = json!({"role": "assistant", "content": out.text});
            if !out.tool_calls.is_empty() {
                message["tool_calls"] = Value::Array(out.tool_calls.clone());
                if out.text.is_empty() {
                    message["content"] = Value::Null;
                }
            }
            json!({"index": 0, "message": message, "logprobs": null, "finish_reason": finish})
        }
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
        if let Some(deltas) = out.tool_deltas.take() {
            let v = with_usage(ids.chunk(&out.model(&model), json!({"tool_calls": deltas}), None));
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
