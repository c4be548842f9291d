//! The agent's data-path gRPC server (`switchyard.v1.Agent`), with grpc.health.v1 and
//! reflection. The controller calls it to run stages; the agent never decides placement.

use std::pin::Pin;
use std::sync::Arc;

use switchyard_backend_core::sampling::Penalties;
use switchyard_backend_core::{GenerateParams, StageKind};
use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::agent_server::{Agent, AgentServer};
use switchyard_proto::v1::{
    AgentGenerateRequest, Classification, Embedding, GenerateChunk, ListResidentRequest,
    ListResidentResponse, LoadModelRequest, LoadModelResponse, RunStageRequest, RunStageResponse,
    StageTrace, UnloadModelRequest, UnloadModelResponse,
};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tracing::{Instrument, info_span, warn};

use crate::batcher::BatchOutput;
use crate::engines::Engines;
use crate::errors::to_status;
use crate::runner::StageRunner;

/// Tokens generated when a request names no `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u32 = 128;

/// Serves the data path on `listener` until `shutdown` turns true. Accepted sockets get
/// TCP_NODELAY: responses are several small writes, and Nagle would add ~40 ms to each hop.
pub async fn serve(
    listener: TcpListener,
    runner: Arc<StageRunner>,
    engines: Arc<Engines>,
    tls: Option<tonic::transport::ServerTlsConfig>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<AgentServer<AgentService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(switchyard_proto::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("embedded descriptor sets are valid");
    let service = AgentService::new(runner, engines);
    let mut builder = tonic::transport::Server::builder();
    let mtls = tls.is_some();
    if let Some(tls) = tls {
        builder = match builder.tls_config(tls) {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "agent data-path TLS settings refused: not serving");
                return;
            }
        };
    }
    let result = builder
        .add_service(health_service)
        .add_service(reflection)
        .add_service(AgentServer::with_interceptor(service, move |req| {
            controller_only(mtls, req)
        }))
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            },
        )
        .await;
    if let Err(e) = result {
        warn!(error = %e, "agent data-path server stopped");
    }
}

/// Under mTLS, admits only calls presenting the controller-role certificate (node
/// certificates chain to the same CA but may not run stages on other nodes).
#[allow(clippy::result_large_err)]
fn controller_only(mtls: bool, req: Request<()>) -> Result<Request<()>, Status> {
    if !mtls {
        return Ok(req);
    }
    match switchyard_pki::identity::of_request(&req) {
        Some(Ok(id)) if id.role == switchyard_pki::Role::Controller => Ok(req),
        Some(Ok(id)) => {
            warn!(peer = %id.name, "data-path call refused: not the controller's certificate");
            Err(ErrorClass::Unauthenticated.status(format!(
                "the data path admits only the controller's certificate, not node '{}'",
                id.name
            )))
        }
        Some(Err(e)) => Err(ErrorClass::Unauthenticated.status(e.to_string())),
        None => Err(ErrorClass::Unauthenticated
            .status("the data path admits only the controller's certificate")),
    }
}

/// `switchyard.v1.Agent` implementation: native stages on the [`StageRunner`], generation on
/// attached endpoints through [`Engines`].
#[derive(Clone)]
pub struct AgentService {
    runner: Arc<StageRunner>,
    engines: Arc<Engines>,
}

impl AgentService {
    /// The service over `runner`'s native stages and `engines`' endpoints.
    pub fn new(runner: Arc<StageRunner>, engines: Arc<Engines>) -> Self {
        AgentService { runner, engines }
    }
}

fn require(field: &str, value: &str) -> Result<(), Status> {
    if value.trim().is_empty() {
        Err(ErrorClass::InvalidArgument.status(format!("{field} must not be empty")))
    } else {
        Ok(())
    }
}

fn stage_of(raw: i32) -> Result<StageKind, Status> {
    match switchyard_proto::convert::stage_from_wire(raw) {
        Some(s @ (StageKind::Classify | StageKind::Embed)) => Ok(s),
        Some(StageKind::Generate) => Err(ErrorClass::InvalidArgument
            .status("RunStage runs classify/embed batches; use Generate for generation")),
        None => Err(ErrorClass::InvalidArgument.status(format!(
            "stage must be STAGE_KIND_CLASSIFY or STAGE_KIND_EMBED, got {raw}"
        ))),
    }
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<GenerateChunk, Status>> + Send>>;

#[tonic::async_trait]
impl Agent for AgentService {
    async fn run_stage(
        &self,
        request: Request<RunStageRequest>,
    ) -> Result<Response<RunStageResponse>, Status> {
        let req = request.into_inner();
        let stage = stage_of(req.stage)?;
        require("model", &req.model)?;
        require("device_id", &req.device_id)?;
        if req.inputs.is_empty() {
            return Err(ErrorClass::InvalidArgument.status("inputs must not be empty"));
        }
        let span = info_span!("stage", stage = stage.as_str(), node = self.runner.node_name(),
            device = %req.device_id, backend = %req.backend, model = %req.model);
        let res = self
            .runner
            .run_batch(stage, &req.model, &req.device_id, &req.backend, req.inputs)
            .instrument(span)
            .await
            .map_err(|e| to_status(&e))?;
        let trace = StageTrace {
            stage: switchyard_proto::convert::stage_to_wire(stage),
            model: req.model.clone(),
            node: self.runner.node_name().to_string(),
            device_id: req.device_id,
            backend: res.backend,
            queue_ms: res.reply.queue_ms,
            compute_ms: res.reply.compute_ms,
            retries: 0,
            batch_size: res.reply.batch_size,
            simulated: res.simulated,
            precision: res.precision.as_str().to_string(),
            load_ms: res.load_ms,
            retrieved: Vec::new(),
            engine_device: String::new(),
        };
        let mut out = RunStageResponse {
            trace: Some(trace),
            ..Default::default()
        };
        match res.reply.output {
            BatchOutput::Embed {
                vectors,
                token_counts,
            } => {
                out.embeddings = vectors
                    .into_iter()
                    .map(|values| Embedding { values })
                    .collect();
                out.input_tokens = token_counts;
            }
            BatchOutput::Classify(scores) => {
                let labels = self
                    .runner
                    .registry()
                    .get(&req.model)
                    .map(|s| s.labels.clone())
                    .unwrap_or_default();
                out.classifications = scores
                    .into_iter()
                    .map(|c| Classification {
                        label: labels.get(c.top).cloned().unwrap_or_default(),
                        score: c.probabilities.get(c.top).copied().unwrap_or_default(),
                        probabilities: c.probabilities,
                        labels: labels.clone(),
                    })
                    .collect();
            }
        }
        Ok(Response::new(out))
    }

    type GenerateStream = ChunkStream;

    async fn generate(
        &self,
        request: Request<AgentGenerateRequest>,
    ) -> Result<Response<Self::GenerateStream>, Status> {
        let req = request.into_inner();
        require("model", &req.model)?;
        require("device_id", &req.device_id)?;
        if req.messages.is_empty() && req.prompt.is_empty() {
            return Err(ErrorClass::InvalidArgument.status("either messages or prompt is required"));
        }
        if self.engines.get(&req.device_id).is_some() {
            let (tx, rx) = mpsc::channel::<Result<GenerateChunk, Status>>(64);
            let engines = self.engines.clone();
            let node = self.runner.node_name().to_string();
            let span = info_span!("stage", stage = "generate", node = %node,
                device = %req.device_id, backend = %req.backend, model = %req.model);
            tokio::spawn(async move { engines.generate(req, &node, tx).await }.instrument(span));
            return Ok(Response::new(Box::pin(ReceiverStream::new(rx))));
        }
        if let Some((llama_cpp, spec)) = self.runner.engine_model(&req.model) {
            let (tx, rx) = mpsc::channel::<Result<GenerateChunk, Status>>(64);
            let (llama_cpp, spec) = (llama_cpp.clone(), spec.clone());
            let node = self.runner.node_name().to_string();
            let span = info_span!("stage", stage = "generate", node = %node,
                device = %req.device_id, backend = "llama_cpp", model = %req.model);
            tokio::spawn(
                async move { llama_cpp.generate(&spec, req, &node, tx).await }.instrument(span),
            );
            return Ok(Response::new(Box::pin(ReceiverStream::new(rx))));
        }
        if req.engine_options.is_some()
            || req
                .messages
                .iter()
                .any(|m| !m.tool_calls_json.is_empty() || !m.tool_call_id.is_empty())
        {
            return Err(ErrorClass::InvalidArgument.status(
                "tools, tool messages and response_format need an engine (llama-server, Ollama, vLLM); the native ONNX decoder does not act on them",
            ));
        }
        let sampling = req.sampling.unwrap_or_default();
        let params = GenerateParams {
            messages: req
                .messages
                .into_iter()
                .map(|m| (m.role, m.content))
                .collect(),
            prompt: req.prompt,
            max_tokens: if sampling.max_tokens == 0 {
                DEFAULT_MAX_TOKENS
            } else {
                sampling.max_tokens
            },
            temperature: sampling.temperature,
            top_p: if sampling.top_p <= 0.0 {
                1.0
            } else {
                sampling.top_p
            },
            top_k: sampling.top_k,
            penalties: Penalties {
                presence: sampling.presence_penalty,
                frequency: sampling.frequency_penalty,
                repeat: sampling.repeat_penalty,
                repeat_last_n: sampling.repeat_last_n,
                logit_bias: sampling.logit_bias.into_iter().collect(),
            },
            seed: sampling.seed,
            stop: sampling.stop,
            continuation: req.continuation,
        };
        let (tx, rx) = mpsc::channel::<Result<GenerateChunk, Status>>(64);
        let runner = self.runner.clone();
        let span = info_span!("stage", stage = "generate", node = runner.node_name(),
            device = %req.device_id, backend = %req.backend, model = %req.model);
        tokio::spawn(
            async move {
                let token_tx = tx.clone();
                let result = runner
                    .generate(
                        &req.model,
                        &req.device_id,
                        &req.backend,
                        params,
                        move |ev| {
                            // Runs on the model thread: blocking send applies back-pressure, and a
                            // closed channel (client gone) cancels generation.
                            token_tx
                                .blocking_send(Ok(GenerateChunk {
                                    text: ev.text,
                                    ..Default::default()
                                }))
                                .is_ok()
                        },
                    )
                    .await;
                let last = match result {
                    Ok(outcome) => Ok(GenerateChunk {
                        text: String::new(),
                        finish_reason: Some(outcome.summary.finish_reason.as_str().to_string()),
                        prompt_tokens: outcome.summary.prompt_tokens,
                        completion_tokens: outcome.summary.completion_tokens,
                        trace: Some(StageTrace {
                            stage: switchyard_proto::v1::StageKind::Generate as i32,
                            model: req.model.clone(),
                            node: runner.node_name().to_string(),
                            device_id: req.device_id.clone(),
                            backend: outcome.backend,
                            queue_ms: outcome.queue_ms,
                            compute_ms: outcome.compute_ms,
                            retries: 0,
                            batch_size: 1,
                            simulated: outcome.simulated,
                            precision: outcome.precision.as_str().to_string(),
                            load_ms: outcome.load_ms,
                            retrieved: Vec::new(),
                            engine_device: String::new(),
                        }),
                        tool_calls_json: String::new(),
                        sources: Vec::new(),
                        retrieval: false,
                    }),
                    Err(e) => Err(to_status(&e)),
                };
                let _ = tx.send(last).await;
            }
            .instrument(span),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn load_model(
        &self,
        request: Request<LoadModelRequest>,
    ) -> Result<Response<LoadModelResponse>, Status> {
        let req = request.into_inner();
        require("model", &req.model)?;
        require("device_id", &req.device_id)?;
        require("backend", &req.backend)?;
        if let Some(ep) = self.engines.get(&req.device_id) {
            return Err(ErrorClass::FailedPrecondition.status(format!(
                "endpoint {} loads and unloads its own models; Switchyard does not",
                ep.config().name
            )));
        }
        let resident = self
            .runner
            .load(&req.model, &req.device_id, &req.backend, req.pin)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(LoadModelResponse {
            resident: Some(resident),
        }))
    }

    async fn unload_model(
        &self,
        request: Request<UnloadModelRequest>,
    ) -> Result<Response<UnloadModelResponse>, Status> {
        let req = request.into_inner();
        require("model", &req.model)?;
        require("device_id", &req.device_id)?;
        if self.runner.unload(&req.model, &req.device_id).await {
            Ok(Response::new(UnloadModelResponse {}))
        } else {
            Err(ErrorClass::NotFound.status(format!(
                "model {} is not loaded on device {}",
                req.model, req.device_id
            )))
        }
    }

    async fn list_resident(
        &self,
        _request: Request<ListResidentRequest>,
    ) -> Result<Response<ListResidentResponse>, Status> {
        Ok(Response::new(ListResidentResponse {
            resident_models: self.runner.resident_models(),
        }))
    }
}
