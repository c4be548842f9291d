//! The retry loop seen from the pipeline: a batch stage and a generation meet the same
//! device failure and are handled by the same loop (same retry count, same breaker charge,
//! same exclusion). The peer is a scripted agent on a real gRPC socket: it fails the first
//! call it gets, on whichever device, and answers the next.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use switchyard_api::Inference;
use switchyard_proto::v1::agent_server::{Agent, AgentServer};
use switchyard_proto::v1::{
    AgentGenerateRequest, BackendSupport, Device, DeviceHealth, DeviceKind, EmbedRequest,
    Embedding, GenerateRequest, ListResidentRequest, ListResidentResponse, LoadModelRequest,
    LoadModelResponse, NodeInfo, RunStageRequest, UnloadModelRequest, UnloadModelResponse,
};
use switchyard_scheduler::{BreakerConfig, CircuitState};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use super::*;
use crate::dispatch::{Attempt, AttemptContext, Failed, Failure, Observed};
use crate::placement::PlacementSettings;

/// Devices the scripted agent was asked to run on, in order.
#[derive(Clone)]
struct ScriptedAgent {
    calls: Arc<Mutex<Vec<String>>>,
    /// What the first call fails with.
    first: Status,
}

impl Default for ScriptedAgent {
    fn default() -> Self {
        ScriptedAgent {
            calls: Arc::default(),
            first: Status::internal("scripted runtime failure"),
        }
    }
}

impl ScriptedAgent {
    /// Records the call; the first one fails with `self.first`.
    fn call(&self, device: &str) -> Result<StageTrace, Status> {
        let mut calls = self.calls.lock().unwrap();
        calls.push(device.to_string());
        if calls.len() == 1 {
            return Err(self.first.clone());
        }
        Ok(StageTrace {
            device_id: device.to_string(),
            ..Default::default()
        })
    }
}

type Chunks =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<GenerateChunk, Status>> + Send>>;

#[tonic::async_trait]
impl Agent for ScriptedAgent {
    async fn run_stage(
        &self,
        r: Request<RunStageRequest>,
    ) -> Result<Response<RunStageResponse>, Status> {
        let trace = self.call(&r.get_ref().device_id)?;
        Ok(Response::new(RunStageResponse {
            embeddings: vec![Embedding {
                values: vec![1.0, 0.0],
            }],
            trace: Some(trace),
            input_tokens: vec![1],
            ..Default::default()
        }))
    }

    type GenerateStream = Chunks;

    async fn generate(&self, r: Request<AgentGenerateRequest>) -> Result<Response<Chunks>, Status> {
        let trace = self.call(&r.get_ref().device_id)?;
        let chunks = vec![
            Ok(GenerateChunk {
                text: "hi".into(),
                ..Default::default()
            }),
            Ok(GenerateChunk {
                finish_reason: Some("stop".into()),
                completion_tokens: 1,
                trace: Some(trace),
                ..Default::default()
            }),
        ];
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn load_model(
        &self,
        _: Request<LoadModelRequest>,
    ) -> Result<Response<LoadModelResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn unload_model(
        &self,
        _: Request<UnloadModelRequest>,
    ) -> Result<Response<UnloadModelResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn list_resident(
        &self,
        _: Request<ListResidentRequest>,
    ) -> Result<Response<ListResidentResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }
}

fn device(id: &str, kind: DeviceKind, backend: &str) -> Device {
    Device {
        id: id.into(),
        kind: kind as i32,
        health: DeviceHealth::Healthy as i32,
        memory_total_bytes: 64 << 30,
        memory_free_bytes: 64 << 30,
        backends: vec![BackendSupport {
            backend: backend.into(),
            usable: true,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A pipeline over one node (GPU + CPU) served by a fresh scripted agent.
async fn cluster_with_scripted_agent() -> (Arc<Pipeline>, ScriptedAgent) {
    cluster_with(ScriptedAgent::default(), None).await
}

/// Like [`cluster_with_scripted_agent`] with `agent`; with `unreachable`, a second node
/// `0-gone` (an Intel GPU and a CPU, preferred for embeddings) whose agent endpoint is that
/// closed port.
async fn cluster_with(
    agent: ScriptedAgent,
    unreachable: Option<String>,
) -> (Arc<Pipeline>, ScriptedAgent) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = AgentServer::new(agent.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(server)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let cluster = Arc::new(ClusterState::new(Duration::from_secs(60), 3));
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/registry.toml");
    let models = Arc::new(ModelRegistry::load(&file, Path::new("/models")).unwrap());
    cluster
        .register(
            NodeInfo {
                node_name: "a".into(),
                agent_endpoint: format!("http://{addr}"),
                devices: vec![
                    device("gpu0", DeviceKind::NvidiaGpu, "ort-cuda"),
                    device("cpu", DeviceKind::Cpu, "ort-cpu"),
                ],
                available_models: models.iter().map(|m| m.name.clone()).collect(),
                ..Default::default()
            },
            "inst",
        )
        .unwrap();
    if let Some(endpoint) = unreachable {
        cluster
            .register(
                NodeInfo {
                    node_name: "0-gone".into(),
                    agent_endpoint: endpoint,
                    devices: vec![
                        device("igpu", DeviceKind::IntelGpu, "openvino"),
                        device("cpu", DeviceKind::Cpu, "ort-cpu"),
                    ],
                    available_models: models.iter().map(|m| m.name.clone()).collect(),
                    ..Default::default()
                },
                "inst-gone",
            )
            .unwrap();
    }
    let placer = Arc::new(Placer::new(
        cluster,
        Arc::new(crate::models::ModelSet::fixed((*models).clone())),
        PlacementSettings {
            breakers: BreakerConfig {
                failure_threshold: 1,
                ..Default::default()
            },
            ..Default::default()
        },
    ));
    let keep = Arc::new(crate::residency::KeepAlives::new(
        &crate::config::ResidencyConfig::default(),
    ));
    let documents = Documents::new(
        Arc::new(crate::documents::SqliteStore::in_memory().unwrap()),
        crate::config::RetrievalConfig::default(),
        64,
    );
    let pipeline = Pipeline::new(
        placer,
        Routes::default(),
        RetryPolicy::default(),
        keep,
        documents,
    )
    .unwrap();
    (Arc::new(pipeline), agent)
}

/// What the loop did: retries reported in the trace, devices tried, breaker of the first.
fn assert_retried_once_elsewhere(p: &Pipeline, agent: &ScriptedAgent, trace: &StageTrace) {
    let calls = agent.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_ne!(calls[0], calls[1], "the retry went to another device");
    assert_eq!(trace.retries, 1);
    assert_eq!(trace.device_id, calls[1]);
    assert!(matches!(
        p.placer().breaker_state("a", &calls[0]),
        CircuitState::Open { .. }
    ));
    assert_eq!(
        p.placer().breaker_state("a", &calls[1]),
        CircuitState::Closed
    );
}

#[tokio::test]
async fn a_retried_embedding_and_a_retried_generation_go_through_the_same_loop() {
    let deadline = Instant::now() + Duration::from_secs(20);

    let (p, agent) = cluster_with_scripted_agent().await;
    let resp = PipelineService(p.clone())
        .embed(
            EmbedRequest {
                model: "minilm-l6-v2".into(),
                inputs: vec!["x".into()],
            },
            deadline,
        )
        .await
        .unwrap();
    assert_retried_once_elsewhere(&p, &agent, resp.trace.as_ref().unwrap());

    let (p, agent) = cluster_with_scripted_agent().await;
    let mut stream = PipelineService(p.clone())
        .generate(
            GenerateRequest {
                model: "smollm2-135m".into(),
                messages: vec![ChatMessage {
                    role: "user".into(),
                    content: "hello".into(),
                    ..Default::default()
                }],
                sampling: Some(SamplingParams {
                    temperature: 0.8,
                    ..Default::default()
                }),
                ..Default::default()
            },
            deadline,
        )
        .await
        .unwrap();
    let mut text = String::new();
    let mut last = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        text.push_str(&chunk.text);
        last = chunk.trace.or(last);
    }
    assert_eq!(
        text, "hi",
        "nothing was sent before the failure, so sampling may retry"
    );
    assert_retried_once_elsewhere(&p, &agent, last.as_ref().unwrap());
}

fn embed_one() -> EmbedRequest {
    EmbedRequest {
        model: "minilm-l6-v2".into(),
        inputs: vec!["x".into()],
    }
}

#[tokio::test]
async fn a_model_that_fails_to_compile_on_one_device_excludes_that_device_not_the_node() {
    // What the agent sends when a model does not compile on its GPU (agent/src/errors.rs).
    let agent = ScriptedAgent {
        first: ErrorClass::Unavailable.device_status("cannot compile minilm-l6-v2 for gpu0"),
        ..Default::default()
    };
    let (p, agent) = cluster_with(agent, None).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let resp = PipelineService(p.clone())
        .embed(embed_one(), deadline)
        .await
        .expect("the node's CPU still serves");
    let calls = agent.calls.lock().unwrap().clone();
    assert_eq!(calls, ["gpu0", "cpu"], "retried on the same node's CPU");
    assert_eq!(resp.trace.unwrap().device_id, "cpu");
    assert!(matches!(
        p.placer().breaker_state("a", "gpu0"),
        CircuitState::Open { .. }
    ));
    assert_eq!(p.placer().breaker_state("a", "cpu"), CircuitState::Closed);
}

#[tokio::test]
async fn an_unreachable_agent_excludes_every_device_of_its_node() {
    // A port nothing listens on: connection refused.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let agent = ScriptedAgent {
        first: Status::internal("unused"),
        ..Default::default()
    };
    // The scripted agent fails its first call, so start it one call in.
    agent.calls.lock().unwrap().push("warm".into());
    let (p, agent) = cluster_with(agent, Some(gone)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let resp = PipelineService(p.clone())
        .embed(embed_one(), deadline)
        .await
        .expect("the reachable node serves");
    let trace = resp.trace.unwrap();
    assert_eq!(trace.node, "", "the scripted trace names no node");
    assert_eq!(
        trace.retries, 1,
        "one failed attempt, on the unreachable node"
    );
    for d in ["igpu", "cpu"] {
        assert!(
            matches!(
                p.placer().breaker_state("0-gone", d),
                CircuitState::Open { .. }
            ),
            "{d} of the unreachable node is charged"
        );
    }
    let calls = agent.calls.lock().unwrap().clone();
    assert_eq!(calls, ["warm", "gpu0"], "then straight to the other node");
}

/// A try that times out on the first device it is sent to; with `meanwhile`, a real
/// embedding through the pipeline is answered by that same device before the timeout.
struct TimesOutOnce {
    pipeline: Arc<Pipeline>,
    meanwhile: bool,
    tried: Vec<String>,
}

impl Attempt for TimesOutOnce {
    type Output = String;

    async fn run(&mut self, cx: AttemptContext) -> Result<(String, Observed), Failed> {
        self.tried.push(cx.target.device.clone());
        if self.tried.len() > 1 {
            return Ok((cx.target.device.clone(), Observed::default()));
        }
        if self.meanwhile {
            let other = PipelineService(self.pipeline.clone())
                .embed(embed_one(), cx.deadline)
                .await
                .expect("the other request is answered");
            assert_eq!(other.trace.unwrap().device_id, cx.target.device);
        }
        Err(Failed::new(
            Failure::timed_out(),
            "embed",
            &cx.target,
            "timed out after 250 ms (adaptive timeout)",
        ))
    }
}

/// Runs a [`TimesOutOnce`] through the retry loop; the devices it tried and the pipeline.
async fn time_out_once(meanwhile: bool) -> (Vec<String>, Arc<Pipeline>) {
    let agent = ScriptedAgent::default();
    // The scripted agent fails its first call: start it one call in.
    agent.calls.lock().unwrap().push("warm".into());
    let (p, _) = cluster_with(agent, None).await;
    let spec = p.placer.spec("minilm-l6-v2", StageKind::Embed).unwrap();
    let req = p.placer.request(&spec).with_inputs(1);
    let mut attempt = TimesOutOnce {
        pipeline: p.clone(),
        meanwhile,
        tried: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let got = crate::dispatch::run(&p.placer, &p.pool, &p.retry, req, deadline, &mut attempt)
        .await
        .expect("retried on the other device");
    assert_eq!(got, attempt.tried[1]);
    (attempt.tried, p)
}

#[tokio::test]
async fn a_timeout_on_a_device_that_answered_meanwhile_is_congestion_and_leaves_its_breaker_closed()
{
    // Under load, requests queue on a working device and some run out of time: that is no
    // reason to open its circuit and refuse everyone (the breaker here opens at 1 failure).
    let (tried, p) = time_out_once(true).await;
    assert_eq!(
        tried,
        ["gpu0", "cpu"],
        "the timed-out request left the device"
    );
    assert_eq!(p.placer().breaker_state("a", "gpu0"), CircuitState::Closed);
    // A device that answered nothing since the dispatch is charged: it may be hung.
    let (tried, p) = time_out_once(false).await;
    assert_eq!(tried, ["gpu0", "cpu"]);
    assert!(matches!(
        p.placer().breaker_state("a", "gpu0"),
        CircuitState::Open { .. }
    ));
}
