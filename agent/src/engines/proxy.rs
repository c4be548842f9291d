//! Proxying one generation to an attached endpoint: text pieces as they come, then a last
//! chunk with the finish reason, counts and trace (or the error, classed).

use std::sync::atomic::Ordering;
use std::time::Instant;

use switchyard_backend_core::ModelSpec;
use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::{
    AgentGenerateRequest, ChatMessage, GenerateChunk, SamplingParams, StageKind, StageTrace,
};
use tokio::sync::mpsc;
use tonic::Status;

use super::{Endpoint, EngineError, EngineKind, Engines, LlamaCpp, ollama, openai};

impl Engines {
    /// Proxies one generation to the endpoint behind `req.device_id`: text chunks as they
    /// come, then a last chunk with the finish reason, counts and trace — or an error.
    pub async fn generate(
        &self,
        req: AgentGenerateRequest,
        node: &str,
        tx: mpsc::Sender<Result<GenerateChunk, Status>>,
    ) {
        let mut sink = Sink {
            tx: tx.clone(),
            pieces: 0,
            echo: String::new(),
        };
        let last = self.proxy(&req, node, &mut sink).await;
        let _ = tx.send(last.map_err(|e| e.to_status())).await;
    }

    async fn proxy(
        &self,
        req: &AgentGenerateRequest,
        node: &str,
        sink: &mut Sink,
    ) -> Result<GenerateChunk, EngineError> {
        let ep = self.get(&req.device_id).ok_or_else(|| {
            EngineError::new(
                ErrorClass::Unavailable,
                format!("no endpoint {} on node {node}", req.device_id),
            )
        })?;
        let name = &ep.config().name;
        if !ep.healthy() {
            return Err(EngineError::new(
                ErrorClass::Unavailable,
                format!("endpoint {name} is down"),
            ));
        }
        if req.messages.is_empty() {
            return Err(EngineError::new(
                ErrorClass::InvalidArgument,
                format!("endpoint {name} takes chat messages, not a raw prompt"),
            ));
        }
        let remote = ep.remote_name(&req.model).ok_or_else(|| {
            EngineError::new(
                ErrorClass::Unavailable,
                format!(
                    "endpoint {name} does not list model {} (any more)",
                    req.model
                ),
            )
        })?;
        let s = req.sampling.clone().unwrap_or_default();
        let started = Instant::now();
        let opts = req.engine_options.as_ref();
        let done = match ep.config().kind {
            EngineKind::Ollama => {
                let messages = with_continuation(req);
                ollama::generate(ep, &remote, &messages, &s, opts, sink).await
            }
            // The OpenAI protocol has no portable way to continue a partial reply (vLLM wants
            // `continue_final_message`, others start a new turn after a trailing assistant
            // message): refused rather than answered with a second reply glued to the first.
            EngineKind::Openai if !req.continuation.is_empty() => Err(EngineError::new(
                ErrorClass::InvalidArgument,
                format!(
                    "endpoint {name} (openai) cannot continue a partial reply: this sampled stream lost its first engine after it sent text; a seed or temperature 0 makes streams resumable on every engine"
                ),
            )),
            EngineKind::Openai => {
                openai::generate(ep, &remote, &req.messages, &s, opts, sink).await
            }
        }?;
        Ok(last_chunk(
            req,
            node,
            ep.config().kind.as_str(),
            done,
            sink,
            started,
        ))
    }
}

impl LlamaCpp {
    /// Streams one generation from the supervised engine of (`spec`, `req.device_id`),
    /// starting it when it does not run and waiting while it (re)starts.
    pub async fn generate(
        &self,
        spec: &ModelSpec,
        req: AgentGenerateRequest,
        node: &str,
        tx: mpsc::Sender<Result<GenerateChunk, Status>>,
    ) {
        let mut sink = Sink {
            tx: tx.clone(),
            pieces: 0,
            echo: String::new(),
        };
        let last = self.proxy(spec, &req, node, &mut sink).await;
        let _ = tx.send(last).await;
    }

    async fn proxy(
        &self,
        spec: &ModelSpec,
        req: &AgentGenerateRequest,
        node: &str,
        sink: &mut Sink,
    ) -> Result<GenerateChunk, Status> {
        if req.messages.is_empty() {
            return Err(ErrorClass::InvalidArgument.status(format!(
                "{} (llama_cpp) takes chat messages, not a raw prompt",
                req.model
            )));
        }
        let (server, load_ms) = self
            .endpoint(spec, &req.device_id)
            .await
            .map_err(|e| crate::errors::to_status(&e))?;
        let s = req.sampling.clone().unwrap_or_default();
        let started = Instant::now();
        server.in_flight().fetch_add(1, Ordering::Relaxed);
        let opts = req.engine_options.as_ref();
        // llama-server continues a trailing assistant message (its "assistant prefill"), and
        // echoes it in its first delta(s): the sink drops that echo.
        let messages = with_continuation(req);
        if let Some(open) = messages.last().filter(|m| m.role == "assistant") {
            sink.echo = open.content.clone();
        }
        let done = openai::generate(server.endpoint(), &req.model, &messages, &s, opts, sink).await;
        server.in_flight().fetch_sub(1, Ordering::Relaxed);
        // The engine failing is this device's failure (retried elsewhere); the request's own
        // faults (400: context overflow) stay the request's.
        let done = done.map_err(|e| match e.class {
            ErrorClass::Unavailable | ErrorClass::Internal => e.class.device_status(e.message),
            class => class.status(e.message),
        })?;
        let mut last = last_chunk(req, node, "llama_cpp", done, sink, started);
        if let Some(t) = last.trace.as_mut() {
            t.load_ms = load_ms;
            // llama.cpp computes at the GGUF's quantisation.
            t.precision = gguf_precision(spec);
            t.engine_device = server.engine_device();
        }
        Ok(last)
    }
}

/// What an engine model computes at: its GGUF's quantisation ("Q4_1"), as the header says.
pub(crate) fn gguf_precision(spec: &ModelSpec) -> String {
    spec.info.get("quantization").cloned().unwrap_or_default()
}

/// The conversation to send: `req.messages`, plus the partial reply to continue as a last
/// assistant message (which llama-server and Ollama's templates leave open) when there is one.
pub(crate) fn with_continuation(req: &AgentGenerateRequest) -> Vec<ChatMessage> {
    let mut messages = req.messages.clone();
    if req.continuation.is_empty() {
        return messages;
    }
    // A conversation that already ends in a partial assistant message (the client's own
    // prefill) is that message's continuation.
    if let Some(last) = messages.last_mut()
        && last.role == "assistant"
        && last.tool_calls_json.is_empty()
    {
        last.content.push_str(&req.continuation);
    } else {
        messages.push(ChatMessage {
            role: "assistant".into(),
            content: req.continuation.clone(),
            ..Default::default()
        });
    }
    messages
}

/// The last chunk of a proxied generation: finish reason, counts and trace.
fn last_chunk(
    req: &AgentGenerateRequest,
    node: &str,
    backend: &str,
    done: Done,
    sink: &Sink,
    started: Instant,
) -> GenerateChunk {
    {
        GenerateChunk {
            text: String::new(),
            finish_reason: Some(done.finish_reason),
            prompt_tokens: done.prompt_tokens,
            // Servers that report no usage: one streamed piece per token.
            completion_tokens: if done.completion_tokens == 0 {
                sink.pieces
            } else {
                done.completion_tokens
            },
            trace: Some(StageTrace {
                stage: StageKind::Generate as i32,
                model: req.model.clone(),
                node: node.to_string(),
                device_id: req.device_id.clone(),
                backend: backend.to_string(),
                compute_ms: started.elapsed().as_secs_f64() * 1e3,
                batch_size: 1,
                load_ms: done.load_ms,
                ..Default::default()
            }),
            tool_calls_json: String::new(),
            sources: Vec::new(),
            retrieval: false,
        }
    }
}

/// How a proxied generation ended.
#[derive(Debug, Default)]
pub(crate) struct Done {
    pub(super) finish_reason: String,
    pub(super) prompt_tokens: u32,
    pub(super) completion_tokens: u32,
    /// The engine's own model-load time for this request, ms (Ollama reports it).
    pub(super) load_ms: f64,
}

/// Where proxied text goes: the data-path stream back to the controller.
pub(crate) struct Sink {
    tx: mpsc::Sender<Result<GenerateChunk, Status>>,
    pieces: u32,
    /// The continued partial reply, while the engine may still be echoing it: skipped.
    echo: String,
}

impl Sink {
    /// Sends one piece of text; the controller gone cancels the generation (dropping the
    /// engine's response closes its connection).
    pub(super) async fn text(&mut self, text: &str) -> Result<(), EngineError> {
        let text = skip_echo(&mut self.echo, text);
        if text.is_empty() {
            return Ok(());
        }
        self.tx
            .send(Ok(GenerateChunk {
                text: text.to_string(),
                ..Default::default()
            }))
            .await
            .map_err(|_| EngineError::new(ErrorClass::Unavailable, "the controller went away"))?;
        self.pieces += 1;
        Ok(())
    }

    /// Sends tool call deltas (OpenAI's streamed JSON array).
    pub(super) async fn tool_calls(&mut self, deltas: String) -> Result<(), EngineError> {
        self.tx
            .send(Ok(GenerateChunk {
                tool_calls_json: deltas,
                sources: Vec::new(),
                retrieval: false,
                ..Default::default()
            }))
            .await
            .map_err(|_| EngineError::new(ErrorClass::Unavailable, "the controller went away"))?;
        self.pieces += 1;
        Ok(())
    }

    /// The error for a stream that ended without its last event.
    pub(super) fn ended_early(&self, ep: &Endpoint) -> EngineError {
        EngineError::new(
            ErrorClass::Unavailable,
            format!(
                "endpoint {} ended the stream before it finished ({} pieces sent)",
                ep.config().name,
                self.pieces
            ),
        )
    }
}

/// What of `text` is new when the engine may be echoing `echo` (the continued message,
/// which llama-server repeats before the first new token): the echoed part is dropped and
/// `echo` shrinks by it; text that does not repeat it ends the echo.
pub(crate) fn skip_echo<'t>(echo: &mut String, text: &'t str) -> &'t str {
    if echo.is_empty() {
        return text;
    }
    if let Some(rest) = text.strip_prefix(echo.as_str()) {
        echo.clear();
        return rest;
    }
    if let Some(rest) = echo.strip_prefix(text) {
        *echo = rest.to_string();
        return "";
    }
    echo.clear();
    text
}

/// The tokens to ask an engine for (Switchyard's 0 = the agent's default).
pub(crate) fn max_tokens(s: &SamplingParams) -> u32 {
    if s.max_tokens == 0 {
        crate::service::DEFAULT_MAX_TOKENS
    } else {
        s.max_tokens
    }
}

/// Reads a streamed HTTP body line by line (NDJSON, server-sent events).
pub(crate) struct LineReader {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl LineReader {
    pub(super) fn new(resp: reqwest::Response) -> Self {
        LineReader {
            resp,
            buf: Vec::new(),
        }
    }

    /// The next line without its end, `None` at the end of the body.
    pub(super) async fn next(&mut self, ep: &Endpoint) -> Result<Option<String>, EngineError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Ok(Some(
                    String::from_utf8_lossy(&line)
                        .trim_end_matches(['\r', '\n'])
                        .to_string(),
                ));
            }
            match self.resp.chunk().await.map_err(|e| ep.error(e))? {
                Some(bytes) => self.buf.extend_from_slice(&bytes),
                None if self.buf.is_empty() => return Ok(None),
                None => {
                    let rest = std::mem::take(&mut self.buf);
                    return Ok(Some(String::from_utf8_lossy(&rest).into_owned()));
                }
            }
        }
    }
}
