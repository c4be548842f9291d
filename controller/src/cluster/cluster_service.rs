//! `switchyard.v1.Cluster`: the read-only view the CLI and clients use.

use std::sync::Arc;

use switchyard_backend_core::ModelRegistry;
use switchyard_proto::v1::cluster_server::Cluster;
use switchyard_proto::v1::{
    ListModelsRequest, ListModelsResponse, ListNodesRequest, ListNodesResponse, ModelPlacement,
    ModelStatus,
};
use tonic::{Request, Response, Status};

use crate::cluster::ClusterState;

/// The cluster service.
#[derive(Debug, Clone)]
pub struct ClusterService {
    cluster: Arc<ClusterState>,
    models: Arc<ModelRegistry>,
}

impl ClusterService {
    /// A view over `cluster` and the model registry.
    pub fn new(cluster: Arc<ClusterState>, models: Arc<ModelRegistry>) -> Self {
        ClusterService { cluster, models }
    }
}

/// Every registered model with where it is loaded.
pub fn model_statuses(cluster: &ClusterState, models: &ModelRegistry) -> Vec<ModelStatus> {
    let resident = cluster.resident();
    models
        .iter()
        .map(|spec| ModelStatus {
            name: spec.name.clone(),
            stage: switchyard_proto::convert::stage_to_wire(spec.stage),
            tier: spec.tier.clone().unwrap_or_default(),
            memory_bytes: spec.memory_bytes,
            loaded_on: resident
                .iter()
                .filter(|(_, r)| r.model == spec.name)
                .map(|(node, r)| ModelPlacement {
                    node: node.clone(),
                    device_id: r.device_id.clone(),
                    backend: r.backend.clone(),
                })
                .collect(),
        })
        .collect()
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn list_nodes(
        &self,
        _request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        Ok(Response::new(ListNodesResponse {
            nodes: self.cluster.snapshot(),
        }))
    }

    async fn list_models(
        &self,
        _request: Request<ListModelsRequest>,
    ) -> Result<Response<ListModelsResponse>, Status> {
        Ok(Response::new(ListModelsResponse {
            models: model_statuses(&self.cluster, &self.models),
        }))
    }
}
