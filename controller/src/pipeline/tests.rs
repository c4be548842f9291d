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
use crate::placement::PlacementSettings;

/// Devices the scripted agent was asked to run on, in order.
#[derive(Clone, Default)]
struct ScriptedAgent {
    calls: Arc<Mutex<Vec<String>>>,
}

impl ScriptedAgent {
    /// Records the call; the first one fails with a device-scoped error.
    fn call(&self, device: &str) -> Result<StageTrace, Status> {
        let mut calls = self.calls.lock().unwrap();
        calls.push(device.to_string());
        if calls.len() == 1 {
            return Err(Status::internal("scripted runtime failure"));
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
    let agent = ScriptedAgent::default();
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
    let placer = Arc::new(Placer::new(
        cluster,
        models,
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
                }],
                sampling: Some(SamplingParams {
                    temperature: 0.8,
                    ..Default::default()
                }),
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
