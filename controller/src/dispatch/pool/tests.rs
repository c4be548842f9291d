use std::pin::Pin;

use futures::Stream;
use switchyard_proto::v1::agent_server::{Agent, AgentServer};
use switchyard_proto::v1::{
    AgentGenerateRequest, GenerateChunk, ListResidentRequest, ListResidentResponse,
    LoadModelRequest, LoadModelResponse, ResidentModel, RunStageRequest, RunStageResponse,
    UnloadModelRequest, UnloadModelResponse,
};
use tonic::{Request, Response, Status};

use super::*;

/// An agent that holds one model, "in-process-model", and nothing else.
struct OneModel;

#[tonic::async_trait]
impl Agent for OneModel {
    async fn run_stage(
        &self,
        _: Request<RunStageRequest>,
    ) -> Result<Response<RunStageResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    type GenerateStream = Pin<Box<dyn Stream<Item = Result<GenerateChunk, Status>> + Send>>;

    async fn generate(
        &self,
        _: Request<AgentGenerateRequest>,
    ) -> Result<Response<Self::GenerateStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn load_model(
        &self,
        _: Request<LoadModelRequest>,
    ) -> Result<Response<LoadModelResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn unload_model(
        &self,
        _: Request<UnloadModelRequest>,
    ) -> Result<Response<UnloadModelResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn list_resident(
        &self,
        _: Request<ListResidentRequest>,
    ) -> Result<Response<ListResidentResponse>, Status> {
        Ok(Response::new(ListResidentResponse {
            resident_models: vec![ResidentModel {
                model: "in-process-model".into(),
                ..Default::default()
            }],
        }))
    }
}

/// Nothing listens on port 1 of the loopback.
const NOWHERE: &str = "http://127.0.0.1:1";

#[tokio::test]
async fn a_node_attached_in_process_is_called_in_process_whatever_endpoint_it_advertises() {
    let pool = AgentPool::default();
    pool.attach_in_process("here", in_process(AgentServer::new(OneModel)));
    let mut client = pool.client("here", NOWHERE).unwrap();
    let listed = client
        .list_resident(ListResidentRequest::default())
        .await
        .expect("the in-process agent answers; no socket is dialled")
        .into_inner();
    assert_eq!(listed.resident_models[0].model, "in-process-model");
}

#[tokio::test]
async fn an_unreachable_agent_over_the_boxed_channel_is_still_unavailable() {
    // The transport error is kept as the source of the boxed service's error, so tonic still
    // reads it as Unavailable (the one failure that is charged to the whole node).
    let pool = AgentPool::default();
    pool.attach_in_process("here", in_process(AgentServer::new(OneModel)));
    let mut client = pool.client("elsewhere", NOWHERE).unwrap();
    let err = client
        .list_resident(ListResidentRequest::default())
        .await
        .expect_err("nothing listens there");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");
}
