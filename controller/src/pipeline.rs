//! The data path: classify → [embed + retrieve] → generate, each stage placed on the best
//! device in the cluster by the scheduler and run on its agent over gRPC, with per-stage
//! adaptive timeouts, retries on another device (exponential backoff + jitter), circuit
//! breakers per device and tier fallback. Every answer carries its trace.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rand::Rng;
use switchyard_api::{ApiError, GenerateStream, Inference};
use switchyard_backend_core::{DeviceType, ModelRegistry, ModelSpec, StageKind};
use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::agent_client::AgentClient;
use switchyard_proto::v1::{
    AgentGenerateRequest, Candidate as ProtoCandidate, ChatMessage, ClassifyRequest,
    ClassifyResponse, DeviceHealth, EmbedRequest, EmbedResponse, GenerateChunk, GenerateRequest,
    ModelStatus, NodeState, PipelineRequest, PipelineResponse, RunStageRequest, RunStageResponse,
    SamplingParams, StageExplanation, StageTrace,
};
use switchyard_scheduler::tiers::{ModelDemand, Tier, TierRoutes, choose_model};
use switchyard_scheduler::view::{ClusterView, DeviceView, NodeView};
use switchyard_scheduler::{
    CircuitBreakers, LatencyStats, PlacementPolicy, PlacementRequest, RetryPolicy,
    scheduler::PlacementContext,
};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tracing::{Instrument, debug, info_span, warn};

use crate::cluster::ClusterState;
use crate::config::Routes;
use switchyard_agent::runner::device_type;

/// Extra time a stage gets when its model is not yet resident on the chosen device.
const COLD_LOAD_ALLOWANCE: Duration = Duration::from_secs(30);

/// Placement + resilience settings of the pipeline.
#[derive(Debug, Clone, Default)]
pub struct PipelineSettings {
    pub policy: PlacementPolicy,
    pub retry: RetryPolicy,
    pub breakers: switchyard_scheduler::BreakerConfig,
    pub latency: switchyard_scheduler::latency::LatencyConfig,
}

/// One document of the retrieval index.
#[derive(Debug, Clone)]
struct Document {
    id: u64,
    text: String,
    vector: Vec<f32>,
}

/// The controller's pipeline; implements the client-facing [`Inference`] contract.
pub struct Pipeline {
    cluster: Arc<ClusterState>,
    models: Arc<ModelRegistry>,
    routes: Routes,
    tiers: TierRoutes,
    policy: PlacementPolicy,
    retry: RetryPolicy,
    breakers: Mutex<CircuitBreakers>,
    latency: Mutex<LatencyStats>,
    agents: Mutex<HashMap<String, AgentClient<Channel>>>,
    in_flight: Arc<Mutex<HashMap<(String, String), u32>>>,
    documents: RwLock<Vec<Document>>,
    next_document: AtomicU64,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("routes", &self.routes)
            .finish()
    }
}

/// Why the routes in the config don't match the model registry.
#[derive(Debug, thiserror::Error)]
#[error("invalid routes: {0}")]
pub struct RouteError(String);

fn proto_stage(stage: StageKind) -> i32 {
    crate::stage_to_proto(stage) as i32
}

/// Checks every model a route names exists in the registry with the right stage: a route to
/// an unregistered model is a start-up error naming it.
pub fn validate_routes(routes: &Routes, models: &ModelRegistry) -> Result<TierRoutes, RouteError> {
    let check = |name: &str, stage: StageKind, what: &str| -> Result<(), RouteError> {
        match models.get(name) {
            None => Err(RouteError(format!(
                "{what} names model '{name}', which is not in the model registry (registered: {})",
                models
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            Some(s) if s.stage != stage => Err(RouteError(format!(
                "{what} names model '{name}', a {} model; it must be a {} model",
                s.stage.as_str(),
                stage.as_str()
            ))),
            Some(_) => Ok(()),
        }
    };
    check(&routes.router, StageKind::Classify, "routes.router")?;
    check(&routes.embed, StageKind::Embed, "routes.embed")?;
    let mut tiers = TierRoutes::default();
    for (tier, list) in [
        (Tier::Fast, &routes.fast),
        (Tier::Code, &routes.code),
        (Tier::Heavy, &routes.heavy),
    ] {
        for m in list {
            check(m, StageKind::Generate, &format!("routes.{}", tier.as_str()))?;
            tiers.push(tier, m.clone());
        }
    }
    if Tier::ALL.iter().all(|t| tiers.models(*t).is_empty()) {
        return Err(RouteError(
            "no generation model in routes.fast/code/heavy".into(),
        ));
    }
    if let Some(spec) = models.get(&routes.router) {
        for label in &spec.labels {
            if label.parse::<Tier>().is_err() {
                return Err(RouteError(format!(
                    "router model '{}' has label '{label}', which is not a tier (fast, code, heavy)",
                    spec.name
                )));
            }
        }
    }
    Ok(tiers)
}

/// Decrements the controller's in-flight count of a device when dropped.
struct InFlight {
    table: Arc<Mutex<HashMap<(String, String), u32>>>,
    key: (String, String),
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut t = self.table.lock().expect("in-flight table");
        if let Some(n) = t.get_mut(&self.key) {
            *n = n.saturating_sub(1);
        }
    }
}

/// A chosen (node, device, backend) and how to reach it.
#[derive(Debug, Clone)]
struct Target {
    node: String,
    device: String,
    backend: String,
    endpoint: String,
    timeout: Duration,
    /// Every device of the target's node (a node-level failure affects them all).
    node_devices: Vec<String>,
}

/// Failures that say "this node cannot serve the model right now" rather than "this device
/// failed": the agent is unreachable, or its model files are missing or corrupt.
fn node_level(class: ErrorClass) -> bool {
    matches!(
        class,
        ErrorClass::Unavailable | ErrorClass::FailedPrecondition
    )
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

fn deadline_error(stage: StageKind) -> ApiError {
    ApiError::new(
        ErrorClass::DeadlineExceeded,
        format!(
            "request deadline passed during the {} stage",
            stage.as_str()
        ),
    )
}

impl Pipeline {
    /// A pipeline over `cluster`. Fails when the routes name unknown models.
    pub fn new(
        cluster: Arc<ClusterState>,
        models: Arc<ModelRegistry>,
        routes: Routes,
        settings: PipelineSettings,
    ) -> Result<Self, RouteError> {
        let tiers = validate_routes(&routes, &models)?;
        Ok(Pipeline {
            cluster,
            models,
            routes,
            tiers,
            policy: settings.policy,
            retry: settings.retry,
            breakers: Mutex::new(CircuitBreakers::new(settings.breakers)),
            latency: Mutex::new(LatencyStats::new(settings.latency)),
            agents: Mutex::new(HashMap::new()),
            in_flight: Arc::new(Mutex::new(HashMap::new())),
            documents: RwLock::new(Vec::new()),
            next_document: AtomicU64::new(1),
        })
    }

    /// The scheduler's snapshot of the cluster, plus node → agent endpoint.
    fn view(&self) -> (ClusterView, HashMap<String, String>) {
        let in_flight = self.in_flight.lock().expect("in-flight table").clone();
        let mut endpoints = HashMap::new();
        let mut nodes = Vec::new();
        for status in self.cluster.snapshot() {
            let info = status.info.unwrap_or_default();
            endpoints.insert(info.node_name.clone(), info.agent_endpoint.clone());
            let devices = info
                .devices
                .iter()
                .map(|d| {
                    let kind = device_type(d.kind());
                    let mut v = DeviceView::new(d.id.clone(), kind);
                    v.healthy = matches!(
                        d.health(),
                        DeviceHealth::Healthy | DeviceHealth::Unspecified
                    );
                    v.memory_total_bytes = d.memory_total_bytes;
                    v.memory_free_bytes = d.memory_free_bytes;
                    v.tops = d.tops.as_ref().map(|t| t.int8_tops).unwrap_or(0.0);
                    v.measured_tops = d.measured_tops.as_ref().map(|t| t.int8_tops);
                    v.backends = d
                        .backends
                        .iter()
                        .filter(|b| b.usable)
                        .map(|b| b.backend.clone())
                        .collect();
                    v.in_flight = in_flight
                        .get(&(info.node_name.clone(), d.id.clone()))
                        .copied()
                        .unwrap_or(0);
                    // NPUs and NCS2 sticks serve one request at a time: a busy one is skipped
                    // for another device. CPUs and GPUs take any number of requests — the
                    // agent's batcher merges them and its bounded queue sheds overload.
                    v.max_concurrency = if matches!(kind, DeviceType::IntelNpu | DeviceType::Ncs2) {
                        d.max_concurrency.max(1)
                    } else {
                        0
                    };
                    let resident = info.resident_models.iter().filter(|r| r.device_id == d.id);
                    v.resident_models = resident.clone().map(|r| r.model.clone()).collect();
                    // The agent evicts idle, unpinned models (LRU) to make room.
                    v.reclaimable_bytes = resident
                        .filter(|r| r.in_flight == 0 && !r.pinned)
                        .map(|r| r.memory_bytes)
                        .sum();
                    v.simulated = d.simulated;
                    v
                })
                .collect();
            let mut node = NodeView::new(info.node_name.clone(), devices);
            node.ready = status.state == NodeState::Ready as i32;
            // Agents report which registered models they have the files of.
            node.available_models = Some(info.available_models.clone());
            nodes.push(node);
        }
        let view = ClusterView::new(nodes).unwrap_or_else(|e| {
            warn!(error = %e, "inconsistent cluster view; placing on an empty one");
            ClusterView::new(Vec::new()).expect("empty view")
        });
        (view, endpoints)
    }

    fn spec(&self, model: &str, stage: StageKind) -> Result<&ModelSpec, ApiError> {
        let spec = self.models.get(model).ok_or_else(|| {
            ApiError::new(
                ErrorClass::NotFound,
                format!(
                    "model '{model}' does not exist (registered: {})",
                    self.models
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .with_param("model")
        })?;
        if spec.stage != stage {
            return Err(ApiError::new(
                ErrorClass::InvalidArgument,
                format!(
                    "model '{model}' is a {} model, not a {} model",
                    spec.stage.as_str(),
                    stage.as_str()
                ),
            )
            .with_param("model"));
        }
        Ok(spec)
    }

    /// Picks the best target for `req`, or explains why there is none.
    fn place(&self, req: &PlacementRequest) -> Result<Target, ApiError> {
        let (view, endpoints) = self.view();
        let breakers = self.breakers.lock().expect("breakers");
        let latency = self.latency.lock().expect("latency");
        let ctx = PlacementContext {
            view: &view,
            policy: &self.policy,
            breakers: &breakers,
            latency: &latency,
        };
        let placement = ctx.place(req);
        match placement.best() {
            Some(c) => Ok(Target {
                node: c.node.clone(),
                device: c.device.clone(),
                backend: c.backend.clone(),
                endpoint: endpoints.get(&c.node).cloned().unwrap_or_default(),
                node_devices: view
                    .node(&c.node)
                    .map(|n| n.devices.iter().map(|d| d.id.clone()).collect())
                    .unwrap_or_default(),
                // A cold placement includes loading (and compiling) the model on the agent,
                // which observed stage latencies do not cover.
                timeout: if c.warm {
                    latency.adaptive_timeout_on(req.stage, &req.model, &c.node, &c.device)
                } else {
                    Duration::from_millis(latency.config().rule(req.stage).ceiling_ms)
                        + COLD_LOAD_ALLOWANCE
                },
            }),
            None => {
                let explanation = ctx.explain(req);
                let reasons: Vec<String> = explanation
                    .rejected
                    .iter()
                    .take(8)
                    .map(|r| format!("{}/{}: {}", r.node, r.device, r.reason))
                    .collect();
                // Every device busy (full concurrency-1 queues) is overload: retry later.
                let all_busy = !explanation.rejected.is_empty()
                    && explanation.rejected.iter().all(|r| {
                        matches!(
                            r.reason,
                            switchyard_scheduler::RejectReason::QueueFull { .. }
                                | switchyard_scheduler::RejectReason::Excluded
                        )
                    })
                    && explanation.rejected.iter().any(|r| {
                        matches!(
                            r.reason,
                            switchyard_scheduler::RejectReason::QueueFull { .. }
                        )
                    });
                Err(ApiError::new(
                    if all_busy {
                        ErrorClass::ResourceExhausted
                    } else {
                        ErrorClass::Unavailable
                    },
                    format!(
                        "no device can run {} for the {} stage ({})",
                        req.model,
                        req.stage.as_str(),
                        if reasons.is_empty() {
                            "no ready nodes".to_string()
                        } else {
                            reasons.join("; ")
                        }
                    ),
                ))
            }
        }
    }

    fn dispatch(&self, t: &Target) -> InFlight {
        self.breakers
            .lock()
            .expect("breakers")
            .on_dispatch(&t.node, &t.device, Instant::now());
        let key = (t.node.clone(), t.device.clone());
        *self
            .in_flight
            .lock()
            .expect("in-flight table")
            .entry(key.clone())
            .or_default() += 1;
        InFlight {
            table: self.in_flight.clone(),
            key,
        }
    }

    /// The best (node, device, backend) for loading `model` now, if any.
    pub fn best_target(&self, model: &str) -> Option<(String, String, String)> {
        let spec = self.models.get(model)?;
        let req = PlacementRequest::new(spec.stage, model, spec.memory_bytes, Instant::now());
        self.place(&req).ok().map(|t| (t.node, t.device, t.backend))
    }

    /// The model registry.
    pub fn models(&self) -> &ModelRegistry {
        &self.models
    }

    fn succeeded(&self, stage: StageKind, model: &str, t: &Target, took: Duration) {
        crate::metrics::stage_completed(stage.as_str(), &t.node, &t.device, &t.backend, took);
        self.breakers
            .lock()
            .expect("breakers")
            .record_success(&t.node, &t.device, Instant::now());
        self.latency
            .lock()
            .expect("latency")
            .record(stage, model, &t.node, &t.device, took);
    }

    /// Records a failure on the target's breaker (every device of the node for node-level
    /// failures) and returns the request with the failed devices excluded.
    fn failed(&self, t: &Target, class: ErrorClass, req: PlacementRequest) -> PlacementRequest {
        crate::metrics::stage_failed(
            req.stage.as_str(),
            &t.node,
            &t.device,
            &format!("{:?}", class),
        );
        let now = Instant::now();
        let devices: Vec<&String> = if node_level(class) {
            t.node_devices.iter().collect()
        } else {
            vec![&t.device]
        };
        let mut breakers = self.breakers.lock().expect("breakers");
        let mut req = req;
        for d in devices {
            breakers.record_failure(&t.node, d, now);
            req = req.excluding(t.node.clone(), d.clone());
        }
        req
    }

    async fn backoff(&self, retry: u32, deadline: Instant) {
        let delay = self.retry.delay(retry, rand::rng().random());
        tokio::time::sleep(delay.min(remaining(deadline))).await;
    }

    async fn agent(&self, endpoint: &str) -> Result<AgentClient<Channel>, ApiError> {
        if let Some(c) = self.agents.lock().expect("agent clients").get(endpoint) {
            return Ok(c.clone());
        }
        let channel = Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| {
                ApiError::new(
                    ErrorClass::Internal,
                    format!("bad agent endpoint {endpoint}: {e}"),
                )
            })?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .connect_lazy();
        let client = AgentClient::new(channel);
        self.agents
            .lock()
            .expect("agent clients")
            .insert(endpoint.to_string(), client.clone());
        Ok(client)
    }

    /// Runs a classify/embed stage with retries on other devices.
    async fn run_batch(
        &self,
        stage: StageKind,
        model: &str,
        inputs: Vec<String>,
        deadline: Instant,
    ) -> Result<RunStageResponse, ApiError> {
        let spec = self.spec(model, stage)?;
        if inputs.is_empty() {
            return Err(
                ApiError::new(ErrorClass::InvalidArgument, "input must not be empty")
                    .with_param("input"),
            );
        }
        let mut req = PlacementRequest::new(stage, model, spec.memory_bytes, Instant::now());
        let mut retries = 0u32;
        let mut last_error: Option<ApiError> = None;
        while retries < self.retry.max_attempts.max(1) {
            req.now = Instant::now();
            let target = match self.place(&req) {
                Ok(t) => t,
                Err(e) => return Err(last_error.unwrap_or(e)),
            };
            let budget = target.timeout.min(remaining(deadline));
            if budget.is_zero() {
                return Err(deadline_error(stage));
            }
            let span = info_span!("stage", stage = stage.as_str(), node = %target.node, device = %target.device, backend = %target.backend, model);
            let _guard = self.dispatch(&target);
            let mut client = self.agent(&target.endpoint).await?;
            let started = Instant::now();
            let call = client.run_stage(RunStageRequest {
                stage: proto_stage(stage),
                model: model.to_string(),
                device_id: target.device.clone(),
                backend: target.backend.clone(),
                inputs: inputs.clone(),
            });
            let outcome = tokio::time::timeout(budget, call).instrument(span).await;
            let error = match outcome {
                Ok(Ok(resp)) => {
                    self.succeeded(stage, model, &target, started.elapsed());
                    let mut resp = resp.into_inner();
                    if let Some(t) = resp.trace.as_mut() {
                        t.retries = retries;
                    }
                    return Ok(resp);
                }
                Ok(Err(status)) => {
                    let class = ErrorClass::from_grpc(status.code());
                    let e = ApiError::new(
                        class,
                        format!(
                            "{} on {}/{}: {}",
                            stage.as_str(),
                            target.node,
                            target.device,
                            status.message()
                        ),
                    );
                    if matches!(class, ErrorClass::InvalidArgument | ErrorClass::NotFound) {
                        return Err(e);
                    }
                    e
                }
                Err(_) => {
                    if remaining(deadline).is_zero() {
                        self.failed(&target, ErrorClass::DeadlineExceeded, req);
                        return Err(deadline_error(stage));
                    }
                    ApiError::new(
                        ErrorClass::DeadlineExceeded,
                        format!(
                            "{} on {}/{} timed out after {} ms (adaptive timeout)",
                            stage.as_str(),
                            target.node,
                            target.device,
                            budget.as_millis()
                        ),
                    )
                }
            };
            warn!(stage = stage.as_str(), node = %target.node, device = %target.device, error = %error.message, "stage failed; re-placing");
            req = self.failed(&target, error.class, req);
            retries += 1;
            last_error = Some(error);
            self.backoff(retries, deadline).await;
        }
        Err(last_error.unwrap_or_else(|| ApiError::new(ErrorClass::Unavailable, "no attempt made")))
    }

    /// Picks the generation model: a concrete one, or `auto` → router → tier (with fallback).
    async fn choose_generator(
        &self,
        requested: &str,
        prompt: &str,
        deadline: Instant,
        traces: &mut Vec<StageTrace>,
    ) -> Result<(String, Tier), ApiError> {
        if requested != "auto" && !requested.is_empty() {
            let spec = self.spec(requested, StageKind::Generate)?;
            let tier = spec
                .tier
                .as_deref()
                .and_then(|t| t.parse().ok())
                .unwrap_or(Tier::Fast);
            return Ok((requested.to_string(), tier));
        }
        let tier = match self
            .run_batch(
                StageKind::Classify,
                &self.routes.router,
                vec![prompt.to_string()],
                deadline,
            )
            .await
        {
            Ok(resp) => {
                traces.extend(resp.trace);
                resp.classifications
                    .first()
                    .and_then(|c| c.label.parse::<Tier>().ok())
                    .unwrap_or(Tier::Fast)
            }
            Err(e) if e.class == ErrorClass::DeadlineExceeded => return Err(e),
            Err(e) => {
                warn!(error = %e.message, "router unavailable; using the fast tier");
                Tier::Fast
            }
        };
        let (view, _) = self.view();
        let breakers = self.breakers.lock().expect("breakers");
        let latency = self.latency.lock().expect("latency");
        let ctx = PlacementContext {
            view: &view,
            policy: &self.policy,
            breakers: &breakers,
            latency: &latency,
        };
        let choice = choose_model(
            tier,
            &self.tiers,
            &ctx,
            |m| {
                self.models.get(m).map(|s| ModelDemand {
                    memory_bytes: s.memory_bytes,
                    backends: None,
                })
            },
            Instant::now(),
        )
        .map_err(|e| ApiError::new(ErrorClass::Unavailable, e.to_string()))?;
        Ok((choice.model, choice.tier_used))
    }

    /// Streams a generation with re-placement: if the device fails before the answer is
    /// complete, the request moves to another device. Deterministic sampling (greedy or a
    /// seed) regenerates the same text, so the part already sent is skipped; otherwise a
    /// failure after the first token ends the stream with the error.
    fn generate_stream(
        self: &Arc<Self>,
        model: String,
        messages: Vec<ChatMessage>,
        sampling: SamplingParams,
        deadline: Instant,
    ) -> Result<GenerateStream, ApiError> {
        let spec = self.spec(&model, StageKind::Generate)?.clone();
        let (tx, rx) = mpsc::channel::<Result<GenerateChunk, ApiError>>(64);
        let this = self.clone();
        tokio::spawn(async move {
            let result = this
                .drive_generation(&spec, messages, sampling, deadline, &tx)
                .await;
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }

    async fn drive_generation(
        &self,
        spec: &ModelSpec,
        messages: Vec<ChatMessage>,
        sampling: SamplingParams,
        deadline: Instant,
        tx: &mpsc::Sender<Result<GenerateChunk, ApiError>>,
    ) -> Result<(), ApiError> {
        let stage = StageKind::Generate;
        let deterministic = sampling.temperature <= 0.0 || sampling.seed.is_some();
        let mut req =
            PlacementRequest::new(stage, spec.name.clone(), spec.memory_bytes, Instant::now());
        let mut sent = String::new();
        let mut retries = 0u32;
        let mut last_error = None;
        while retries < self.retry.max_attempts.max(1) {
            req.now = Instant::now();
            let target = match self.place(&req) {
                Ok(t) => t,
                Err(e) => return Err(last_error.unwrap_or(e)),
            };
            let span = info_span!("stage", stage = "generate", node = %target.node, device = %target.device, backend = %target.backend, model = %spec.name);
            let _guard = self.dispatch(&target);
            let mut client = self.agent(&target.endpoint).await?;
            let started = Instant::now();
            // The adaptive timeout bounds the wait for each chunk (time to first token and
            // gaps between tokens), the request deadline bounds the whole.
            let chunk_timeout = target.timeout;
            let open = tokio::time::timeout(
                chunk_timeout.min(remaining(deadline)),
                client.generate(AgentGenerateRequest {
                    model: spec.name.clone(),
                    device_id: target.device.clone(),
                    backend: target.backend.clone(),
                    messages: messages.clone(),
                    prompt: String::new(),
                    sampling: Some(sampling.clone()),
                }),
            )
            .instrument(span.clone())
            .await;
            let mut regenerated = String::new();
            let failure: ApiError = match open {
                Err(_) => ApiError::new(
                    ErrorClass::DeadlineExceeded,
                    format!(
                        "generate on {}/{} did not start in time",
                        target.node, target.device
                    ),
                ),
                Ok(Err(status)) => {
                    let class = ErrorClass::from_grpc(status.code());
                    let e = ApiError::new(
                        class,
                        format!(
                            "generate on {}/{}: {}",
                            target.node,
                            target.device,
                            status.message()
                        ),
                    );
                    if matches!(class, ErrorClass::InvalidArgument | ErrorClass::NotFound) {
                        return Err(e);
                    }
                    e
                }
                Ok(Ok(stream)) => {
                    let mut stream = stream.into_inner();
                    loop {
                        let wait = chunk_timeout.min(remaining(deadline));
                        let next = tokio::time::timeout(wait, stream.next())
                            .instrument(span.clone())
                            .await;
                        match next {
                            Err(_) if remaining(deadline).is_zero() => {
                                return Err(deadline_error(stage));
                            }
                            Err(_) => {
                                break ApiError::new(
                                    ErrorClass::DeadlineExceeded,
                                    format!(
                                        "generate on {}/{} stalled for {} ms",
                                        target.node,
                                        target.device,
                                        wait.as_millis()
                                    ),
                                );
                            }
                            Ok(None) => {
                                break ApiError::new(
                                    ErrorClass::Unavailable,
                                    format!(
                                        "generate stream from {}/{} ended without a final chunk",
                                        target.node, target.device
                                    ),
                                );
                            }
                            Ok(Some(Err(status))) => {
                                let class = ErrorClass::from_grpc(status.code());
                                let e = ApiError::new(
                                    class,
                                    format!(
                                        "generate on {}/{}: {}",
                                        target.node,
                                        target.device,
                                        status.message()
                                    ),
                                );
                                if matches!(
                                    class,
                                    ErrorClass::InvalidArgument | ErrorClass::NotFound
                                ) {
                                    return Err(e);
                                }
                                break e;
                            }
                            Ok(Some(Ok(mut chunk))) => {
                                let is_last = chunk.finish_reason.is_some();
                                regenerated.push_str(&chunk.text);
                                if regenerated.len() <= sent.len() {
                                    if !sent.starts_with(&regenerated) {
                                        return Err(ApiError::new(
                                            ErrorClass::Unavailable,
                                            "re-placed generation diverged from the text already sent",
                                        ));
                                    }
                                    chunk.text.clear();
                                } else {
                                    if !regenerated.starts_with(&sent) {
                                        return Err(ApiError::new(
                                            ErrorClass::Unavailable,
                                            "re-placed generation diverged from the text already sent",
                                        ));
                                    }
                                    chunk.text = regenerated[sent.len()..].to_string();
                                    sent = regenerated.clone();
                                }
                                if is_last {
                                    self.succeeded(stage, &spec.name, &target, started.elapsed());
                                    crate::metrics::tokens_generated(
                                        &spec.name,
                                        u64::from(chunk.completion_tokens),
                                    );
                                    if let Some(t) = chunk.trace.as_mut() {
                                        t.retries = retries;
                                    }
                                    let _ = tx.send(Ok(chunk)).await;
                                    return Ok(());
                                }
                                if !chunk.text.is_empty() && tx.send(Ok(chunk)).await.is_err() {
                                    return Ok(()); // client went away
                                }
                            }
                        }
                    }
                }
            };
            warn!(node = %target.node, device = %target.device, error = %failure.message, "generation failed; re-placing");
            req = self.failed(&target, failure.class, req);
            if !sent.is_empty() && !deterministic {
                return Err(failure);
            }
            retries += 1;
            last_error = Some(failure);
            self.backoff(retries, deadline).await;
        }
        Err(last_error.unwrap_or_else(|| ApiError::new(ErrorClass::Unavailable, "no attempt made")))
    }

    /// Ranks every candidate for every stage of the pipeline without running anything.
    fn explain(&self, tier_models: &[String]) -> Vec<StageExplanation> {
        let (view, _) = self.view();
        let breakers = self.breakers.lock().expect("breakers");
        let latency = self.latency.lock().expect("latency");
        let ctx = PlacementContext {
            view: &view,
            policy: &self.policy,
            breakers: &breakers,
            latency: &latency,
        };
        let mut stages: Vec<(StageKind, String)> = vec![
            (StageKind::Classify, self.routes.router.clone()),
            (StageKind::Embed, self.routes.embed.clone()),
        ];
        stages.extend(tier_models.iter().map(|m| (StageKind::Generate, m.clone())));
        stages
            .into_iter()
            .filter_map(|(stage, model)| {
                let spec = self.models.get(&model)?;
                let req =
                    PlacementRequest::new(stage, model.clone(), spec.memory_bytes, Instant::now());
                let e = ctx.explain(&req);
                let mut candidates: Vec<ProtoCandidate> = e
                    .candidates
                    .iter()
                    .map(|c| ProtoCandidate {
                        node: c.node.clone(),
                        device_id: c.device.clone(),
                        backend: c.backend.clone(),
                        score: c.score,
                        filtered_reason: String::new(),
                        score_detail: c.score_detail(),
                    })
                    .collect();
                candidates.extend(e.rejected.iter().map(|r| ProtoCandidate {
                    node: r.node.clone(),
                    device_id: r.device.clone(),
                    backend: String::new(),
                    score: 0.0,
                    filtered_reason: r.reason.to_string(),
                    score_detail: String::new(),
                }));
                Some(StageExplanation {
                    stage: proto_stage(stage),
                    model,
                    candidates,
                })
            })
            .collect()
    }

    async fn retrieve(
        &self,
        prompt: &str,
        top_k: usize,
        deadline: Instant,
        traces: &mut Vec<StageTrace>,
    ) -> Result<Vec<String>, ApiError> {
        if self.documents.read().expect("documents").is_empty() {
            return Ok(Vec::new());
        }
        let resp = self
            .run_batch(
                StageKind::Embed,
                &self.routes.embed,
                vec![prompt.to_string()],
                deadline,
            )
            .await?;
        traces.extend(resp.trace);
        let query = resp
            .embeddings
            .into_iter()
            .next()
            .map(|e| e.values)
            .unwrap_or_default();
        let docs = self.documents.read().expect("documents");
        let mut scored: Vec<(f32, &Document)> = docs
            .iter()
            .map(|d| {
                (
                    d.vector.iter().zip(&query).map(|(a, b)| a * b).sum::<f32>(),
                    d,
                )
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.id.cmp(&b.1.id)));
        debug!(hits = ?scored.iter().take(top_k).map(|(s, d)| (d.id, *s)).collect::<Vec<_>>(), "retrieval");
        Ok(scored
            .into_iter()
            .take(top_k)
            .map(|(_, d)| d.text.clone())
            .collect())
    }
}

/// The system message of a pipeline request: the model's own system prompt (if any) followed
/// by the retrieved context (if any).
fn system_message(system_prompt: Option<&str>, context: &[String]) -> Option<ChatMessage> {
    let mut content = system_prompt.unwrap_or_default().to_string();
    if !context.is_empty() {
        if !content.is_empty() {
            content.push_str("\n\n");
        }
        content.push_str("Use this context if it is relevant:\n");
        for c in context {
            content.push_str("- ");
            content.push_str(c);
            content.push('\n');
        }
    }
    (!content.is_empty()).then(|| ChatMessage {
        role: "system".into(),
        content,
    })
}

fn last_user_message(messages: &[ChatMessage]) -> String {
    messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| m.content.clone())
        .unwrap_or_default()
}

/// Handle implementing [`Inference`] (the pipeline is shared behind an `Arc`).
#[derive(Debug, Clone)]
pub struct PipelineService(pub Arc<Pipeline>);

#[tonic::async_trait]
impl Inference for PipelineService {
    async fn list_models(&self) -> Vec<ModelStatus> {
        crate::cluster_service::model_statuses(&self.0.cluster, &self.0.models)
    }

    async fn embed(&self, req: EmbedRequest, deadline: Instant) -> Result<EmbedResponse, ApiError> {
        let resp = self
            .0
            .run_batch(StageKind::Embed, &req.model, req.inputs, deadline)
            .await?;
        Ok(EmbedResponse {
            prompt_tokens: resp.input_tokens.iter().sum(),
            embeddings: resp.embeddings,
            trace: resp.trace,
        })
    }

    async fn classify(
        &self,
        req: ClassifyRequest,
        deadline: Instant,
    ) -> Result<ClassifyResponse, ApiError> {
        let resp = self
            .0
            .run_batch(StageKind::Classify, &req.model, req.inputs, deadline)
            .await?;
        Ok(ClassifyResponse {
            classifications: resp.classifications,
            trace: resp.trace,
        })
    }

    async fn generate(
        &self,
        req: GenerateRequest,
        deadline: Instant,
    ) -> Result<GenerateStream, ApiError> {
        if req.messages.is_empty() {
            return Err(
                ApiError::new(ErrorClass::InvalidArgument, "messages must not be empty")
                    .with_param("messages"),
            );
        }
        let mut traces = Vec::new();
        let prompt = last_user_message(&req.messages);
        let (model, _tier) = self
            .0
            .choose_generator(&req.model, &prompt, deadline, &mut traces)
            .await?;
        self.0.generate_stream(
            model,
            req.messages,
            req.sampling.unwrap_or_default(),
            deadline,
        )
    }

    async fn run_pipeline(
        &self,
        req: PipelineRequest,
        deadline: Instant,
    ) -> Result<PipelineResponse, ApiError> {
        if req.prompt.trim().is_empty() {
            return Err(
                ApiError::new(ErrorClass::InvalidArgument, "prompt must not be empty")
                    .with_param("prompt"),
            );
        }
        let p = &self.0;
        if req.explain_only {
            let mut all: Vec<String> = Vec::new();
            for t in Tier::ALL {
                for m in p.tiers.models(t) {
                    if !all.contains(m) {
                        all.push(m.clone());
                    }
                }
            }
            return Ok(PipelineResponse {
                explanation: p.explain(&all),
                ..Default::default()
            });
        }
        let mut traces = Vec::new();
        let (model, tier) = p
            .choose_generator("auto", &req.prompt, deadline, &mut traces)
            .await?;
        let top_k = if req.top_k == 0 {
            3
        } else {
            req.top_k as usize
        };
        let context = if req.retrieve {
            p.retrieve(&req.prompt, top_k, deadline, &mut traces)
                .await?
        } else {
            Vec::new()
        };
        let mut messages: Vec<ChatMessage> = system_message(
            p.models
                .get(&model)
                .and_then(|s| s.system_prompt.as_deref()),
            &context,
        )
        .into_iter()
        .collect();
        messages.push(ChatMessage {
            role: "user".into(),
            content: req.prompt.clone(),
        });
        let mut stream = p.generate_stream(
            model.clone(),
            messages,
            req.sampling.unwrap_or_default(),
            deadline,
        )?;
        let mut text = String::new();
        let mut out = PipelineResponse {
            tier: tier.as_str().to_string(),
            model,
            context_documents: context,
            ..Default::default()
        };
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            text.push_str(&chunk.text);
            if chunk.finish_reason.is_some() {
                out.prompt_tokens = chunk.prompt_tokens;
                out.completion_tokens = chunk.completion_tokens;
                traces.extend(chunk.trace);
            }
        }
        out.text = text;
        out.trace = traces;
        Ok(out)
    }

    async fn add_documents(
        &self,
        docs: Vec<String>,
        deadline: Instant,
    ) -> Result<Vec<u64>, ApiError> {
        if docs.is_empty() || docs.iter().any(|d| d.trim().is_empty()) {
            return Err(ApiError::new(
                ErrorClass::InvalidArgument,
                "documents must be non-empty strings",
            )
            .with_param("documents"));
        }
        let resp = self
            .0
            .run_batch(
                StageKind::Embed,
                &self.0.routes.embed,
                docs.clone(),
                deadline,
            )
            .await?;
        let mut store = self.0.documents.write().expect("documents");
        let mut ids = Vec::new();
        for (text, e) in docs.into_iter().zip(resp.embeddings) {
            let id = self.0.next_document.fetch_add(1, Ordering::Relaxed);
            store.push(Document {
                id,
                text,
                vector: e.values,
            });
            ids.push(id);
        }
        Ok(ids)
    }

    fn ready(&self) -> bool {
        self.0
            .cluster
            .snapshot()
            .iter()
            .any(|n| n.state == NodeState::Ready as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn registry() -> ModelRegistry {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/registry.toml");
        ModelRegistry::load(&file, Path::new("/models")).expect("registry")
    }

    #[test]
    fn routes_to_unregistered_or_wrong_stage_models_are_start_up_errors() {
        let reg = registry();
        assert!(validate_routes(&Routes::default(), &reg).is_ok());
        let r = Routes {
            code: vec!["llama-70b".into()],
            ..Default::default()
        };
        let err = validate_routes(&r, &reg).unwrap_err().to_string();
        assert!(
            err.contains("routes.code names model 'llama-70b'")
                && err.contains("not in the model registry"),
            "{err}"
        );
        let r = Routes {
            fast: vec!["minilm-l6-v2".into()],
            ..Default::default()
        };
        let err = validate_routes(&r, &reg).unwrap_err().to_string();
        assert!(
            err.contains("a embed model; it must be a generate model"),
            "{err}"
        );
    }

    #[test]
    fn system_message_joins_prompt_and_context() {
        assert_eq!(system_message(None, &[]), None);
        let m = system_message(Some("Be brief."), &[]).unwrap();
        assert_eq!(m.content, "Be brief.");
        let m = system_message(Some("Be brief."), &["doc one".into()]).unwrap();
        assert_eq!(
            m.content,
            "Be brief.\n\nUse this context if it is relevant:\n- doc one\n"
        );
        let m = system_message(None, &["a".into(), "b".into()]).unwrap();
        assert_eq!(m.content, "Use this context if it is relevant:\n- a\n- b\n");
        assert_eq!(m.role, "system");
    }
}
