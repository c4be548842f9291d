//! `switchyard.v1.Cluster`: the read-only view the CLI and clients use.

use std::collections::HashMap;
use std::sync::Arc;

use switchyard_backend_core::ModelRegistry;
use switchyard_proto::v1::cluster_server::Cluster;
use switchyard_proto::v1::{
    ListModelsRequest, ListModelsResponse, ListNodesRequest, ListNodesResponse, ModelPlacement,
    ModelStatus,
};
use tonic::{Request, Response, Status};

use crate::cluster::ClusterState;
use crate::residency::KeepAlives;

/// The cluster service.
#[derive(Debug, Clone)]
pub struct ClusterService {
    cluster: Arc<ClusterState>,
    models: Arc<ModelRegistry>,
    keep_alives: Arc<KeepAlives>,
}

impl ClusterService {
    /// A view over `cluster`, the model registry and the models' keep-alives.
    pub fn new(
        cluster: Arc<ClusterState>,
        models: Arc<ModelRegistry>,
        keep_alives: Arc<KeepAlives>,
    ) -> Self {
        ClusterService {
            cluster,
            models,
            keep_alives,
        }
    }
}

/// Every registered model with where it is loaded and when each copy expires.
pub fn model_statuses(
    cluster: &ClusterState,
    models: &ModelRegistry,
    keep_alives: &KeepAlives,
) -> Vec<ModelStatus> {
    let resident = cluster.resident();
    let kinds: HashMap<(String, String), i32> = cluster
        .snapshot()
        .into_iter()
        .filter_map(|n| n.info)
        .flat_map(|info| {
            let node = info.node_name;
            info.devices
                .into_iter()
                .map(move |d| ((node.clone(), d.id), d.kind))
        })
        .collect();
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
                    device_kind: kinds
                        .get(&(node.clone(), r.device_id.clone()))
                        .copied()
                        .unwrap_or_default(),
                    expires_in_ms: keep_alives.expires_in_ms(r),
                })
                .collect(),
            context_tokens: spec.context_tokens.unwrap_or(0),
            embedding_dim: spec.embedding_dim.unwrap_or(0),
            sha256: spec.sha256.clone().unwrap_or_default(),
            info: spec.info.clone().into_iter().collect(),
            format: "onnx".into(),
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
            models: model_statuses(&self.cluster, &self.models, &self.keep_alives),
        }))
    }
}
