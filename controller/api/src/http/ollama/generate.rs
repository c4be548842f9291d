//! `POST /api/chat` and `POST /api/generate`: NDJSON streaming by default (one JSON object
//! per line, the last with `"done": true`, `done_reason`, token counts and durations in
//! nanoseconds), one JSON object with `"stream": false`. An empty `messages` / `prompt`
//! loads the model, or with `keep_alive: 0` unloads it, as Ollama does.

use std::convert::Infallible;
use std::time::Instant;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Map, Value, json};
use switchyard_proto::v1::{ChatMessage, GenerateRequest};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::request::{self, only};
use super::{OllamaBody, OllamaError, model_name, now_rfc3339, ollama_name};
use crate::credentials::Scope;
use crate::http::auth::may_change_residency;
use crate::http::chat::{Outcome, next_chunk};
use crate::http::{AppState, fields, trace};
use crate::inference::{ApiError, GenerateStream, KeepAlive};
use crate::validate;

/// Which route's shape to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Chat,
    Generate,
}

/// One generation request as both routes read it.
struct Job {
    shape: Shape,
    /// The name as the client sent it (echoed back for a concrete model).
    requested: String,
    model: String,
    keep: KeepAlive,
    stream: bool,
    started: Instant,
    /// The caller's token scope (loading and unloading need `admin`).
    scope: Option<Scope>,
    /// `options.retrieval`: the user's documents as context.
    retrieval: Option<switchyard_proto::v1::Retrieval>,
}

impl Job {
    /// The `model` field of a response: the client's name, or for `auto` the model that ran.
    fn model_field(&self, out: &Outcome) -> String {
        if self.model == "auto" {
            ollama_name(&out.model(&self.model))
        } else {
            self.requested.clone()
        }
    }

    /// One line's object: the text piece (`done: false`) or the final one.
    fn piece(&self, model: &str, text: &str) -> Value {
        let mut v = json!({"model": model, "created_at": now_rfc3339(), "done": false});
        match self.shape {
            Shape::Chat => v["message"] = json!({"role": "assistant", "content": text}),
            Shape::Generate => v["response"] = json!(text),
        }
        v
    }

    /// The final object: `text` (all of it when not streaming), reason, counts, durations.
    fn last(&self, out: &Outcome, text: &str, first_token: Option<Instant>) -> Value {
        let model = self.model_field(out);
        let mut v = self.piece(&model, text);
        if self.shape == Shape::Chat && !out.tool_calls.is_empty() {
            v["message"]["tool_calls"] = super::tools::ollama_calls(&out.tool_calls);
        }
        let total = self.started.elapsed();
        let ns = |ms: f64| (ms * 1e6).max(0.0) as u64;
        let (load_ms, queue_ms) = out
            .trace
            .as_ref()
            .map_or((0.0, 0.0), |t| (t.load_ms, t.queue_ms));
        // Until the first token: placement, loading, queueing and the prompt's forward pass.
        let to_first = first_token.map_or(total, |t| t.duration_since(self.started));
        let prompt_eval = to_first.as_secs_f64() * 1e3 - load_ms - queue_ms;
        let eval = first_token.map_or(0.0, |t| t.elapsed().as_secs_f64() * 1e3);
        v["done"] = json!(true);
        v["done_reason"] = json!(out.finish_reason.clone().unwrap_or_else(|| "stop".into()));
        v["total_duration"] = json!(total.as_nanos() as u64);
        v["load_duration"] = json!(ns(load_ms));
        v["prompt_eval_count"] = json!(out.prompt_tokens);
        v["prompt_eval_duration"] = json!(ns(prompt_eval));
        v["eval_count"] = json!(out.completion_tokens);
        v["eval_duration"] = json!(ns(eval));
        v["switchyard"] = out.switchyard();
        v
    }

    /// The answer to an empty prompt: the model was loaded (or will be unloaded).
    fn residency_answer(&self, reason: &str) -> Value {
        let mut v = self.piece(&self.requested, "");
        v["done"] = json!(true);
        v["done_reason"] = json!(reason);
        v
    }
}

/// Common fields, the model and keep-alive of a request (`keep_alive: 0`, an unload, needs
/// the `admin` scope).
fn job(
    st: &AppState,
    body: &Map<String, Value>,
    shape: Shape,
    scope: Option<Scope>,
) -> Result<Job, ApiError> {
    let requested = fields::req_string(body, "model")?;
    validate::model(&requested)?;
    let model = model_name(&requested).to_string();
    let keep = request::keep_alive(body)?;
    if keep == KeepAlive::Unload {
        may_change_residency(scope)?;
    }
    st.inf.check_keep_alive(&model, keep)?;
    Ok(Job {
        shape,
        requested,
        model,
        keep,
        stream: fields::opt_bool(body, "stream")?.unwrap_or(true),
        started: Instant::now(),
        scope,
        retrieval: match fields::get(body, "options") {
            Some(Value::Object(o)) => fields::retrieval(o, "retrieval", "options.")?,
            _ => None,
        },
    })
}

pub(crate) async fn chat(
    State(st): State<AppState>,
    scope: Option<Extension<Scope>>,
    OllamaBody(body): OllamaBody,
) -> Result<Response, OllamaError> {
    only(
        &body,
        "",
        &[
            "model",
            "messages",
            "stream",
            "options",
            "keep_alive",
            "tools",
            "format",
        ],
    )?;
    let job = job(&st, &body, Shape::Chat, scope.map(|e| e.0))?;
    let messages = request::messages(&body)?;
    let sampling = request::sampling(&body, &st.cfg)?;
    let engine_options = super::tools::engine_options(&body)?;
    if messages.is_empty() {
        return residency(st, job).await;
    }
    validate::messages(&messages, &st.cfg)?;
    run(st, job, messages, sampling, engine_options).await
}

pub(crate) async fn generate(
    State(st): State<AppState>,
    scope: Option<Extension<Scope>>,
    OllamaBody(body): OllamaBody,
) -> Result<Response, OllamaError> {
    only(
        &body,
        "",
        &[
            "model",
            "prompt",
            "system",
            "stream",
            "options",
            "keep_alive",
        ],
    )?;
    let job = job(&st, &body, Shape::Generate, scope.map(|e| e.0))?;
    let prompt = fields::opt_string(&body, "prompt")?.unwrap_or_default();
    let system = fields::opt_string(&body, "system")?.filter(|s| !s.is_empty());
    let sampling = request::sampling(&body, &st.cfg)?;
    if prompt.is_empty() {
        return residency(st, job).await;
    }
    validate::prompt(&prompt, &st.cfg)?;
    let mut messages: Vec<ChatMessage> = system
        .map(|content| ChatMessage {
            role: "system".into(),
            content,
            ..Default::default()
        })
        .into_iter()
        .collect();
    messages.push(ChatMessage {
        role: "user".into(),
        content: prompt,
        ..Default::default()
    });
    validate::messages(&messages, &st.cfg)?;
    run(st, job, messages, sampling, None).await
}

/// An empty prompt: unload with `keep_alive: 0`, else load the model and keep it (both need
/// the `admin` scope).
async fn residency(st: AppState, job: Job) -> Result<Response, OllamaError> {
    may_change_residency(job.scope)?;
    if job.keep == KeepAlive::Unload {
        st.inf.set_keep_alive(&job.model, KeepAlive::Unload)?;
        return Ok(axum::Json(job.residency_answer("unload")).into_response());
    }
    let deadline = st.deadline();
    st.until(deadline, st.inf.preload(&job.model, deadline))
        .await?;
    st.inf.set_keep_alive(&job.model, job.keep)?;
    Ok(axum::Json(job.residency_answer("load")).into_response())
}

/// Generates, then applies the keep-alive to the model that ran.
async fn run(
    st: AppState,
    job: Job,
    messages: Vec<ChatMessage>,
    sampling: switchyard_proto::v1::SamplingParams,
    engine_options: Option<switchyard_proto::v1::EngineOptions>,
) -> Result<Response, OllamaError> {
    let deadline = st.deadline();
    let req = GenerateRequest {
        model: job.model.clone(),
        messages,
        sampling: Some(sampling),
        engine_options,
        retrieval: job.retrieval.clone(),
    };
    let mut stream = st.until(deadline, st.inf.generate(req, deadline)).await?;
    // The first chunk is awaited before answering, so early failures keep their status.
    let first = next_chunk(&st, &mut stream, deadline).await?;
    if job.stream {
        let (tx, rx) = mpsc::channel::<String>(64);
        tokio::spawn(drive(st, job, stream, first, deadline, tx));
        let body = Body::from_stream(ReceiverStream::new(rx).map(Ok::<_, Infallible>));
        let mut resp = body.into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        return Ok(resp);
    }
    let mut out = Outcome::default();
    let mut first_token = None;
    let mut next = first;
    while let Some(c) = next {
        let text = out.absorb(c);
        if !text.is_empty() && first_token.is_none() {
            first_token = Some(Instant::now());
        }
        out.text.push_str(&text);
        if out.finish_reason.is_some() {
            break;
        }
        next = next_chunk(&st, &mut stream, deadline).await?;
    }
    keep_after(&st, &job, &out);
    let text = std::mem::take(&mut out.text);
    let body = job.last(&out, &text, first_token);
    let mut headers = trace::headers(out.trace.iter());
    trace::put_total(&mut headers, job.started);
    Ok((headers, axum::Json(body)).into_response())
}

/// Records the request's keep-alive for the model that ran.
fn keep_after(st: &AppState, job: &Job, out: &Outcome) {
    let used = out.model(&job.model);
    if let Err(e) = st.inf.set_keep_alive(&used, job.keep) {
        tracing::warn!(model = %used, error = %e.message, "keep_alive not applied");
    }
}

fn line(v: &Value) -> String {
    let mut s = v.to_string();
    s.push('\n');
    s
}

/// Feeds NDJSON lines to `tx` until the generation ends, the deadline passes or the client
/// goes away (a failed send drops the generation stream, which cancels it). A failure
/// after the first line is sent as a line `{"error": "..."}`, as Ollama does.
async fn drive(
    st: AppState,
    job: Job,
    mut stream: GenerateStream,
    first: Option<switchyard_proto::v1::GenerateChunk>,
    deadline: Instant,
    tx: mpsc::Sender<String>,
) {
    let mut out = Outcome::default();
    let mut first_token = None;
    let mut next = first;
    while let Some(c) = next {
        let text = out.absorb(c);
        if !text.is_empty() {
            first_token.get_or_insert_with(Instant::now);
            let v = job.piece(&job.model_field(&out), &text);
            if tx.send(line(&v)).await.is_err() {
                return;
            }
        }
        if out.finish_reason.is_some() {
            break;
        }
        next = match next_chunk(&st, &mut stream, deadline).await {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(line(&json!({"error": e.message}))).await;
                return;
            }
        };
    }
    drop(stream);
    keep_after(&st, &job, &out);
    let _ = tx.send(line(&job.last(&out, "", first_token))).await;
}
