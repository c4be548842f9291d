//! `switchyard.v1.Cluster`: the view the CLI and clients use, and `RemoveNode`.

use std::collections::HashMap;
use std::sync::Arc;

use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::cluster_server::Cluster;
use switchyard_proto::v1::{
    AddModelRequest, AddModelResponse, GetRouterRequest, InstallRouterRequest, ListModelsRequest,
    ListModelsResponse, ListNodesRequest, ListNodesResponse, ModelPlacement, ModelStatus,
    NodeState, RemoveModelRequest, RemoveModelResponse, RemoveNodeRequest, RemoveNodeResponse,
    RollbackRouterRequest, RouterStatus,
};
use tonic::{Request, Response, Status};

use crate::cluster::ClusterState;
use crate::models::ModelSet;
use crate::pipeline::{Pipeline, Slots};
use crate::residency::KeepAlives;
use crate::security::Security;
use crate::tier_router::RouterHead;

/// The cluster service.
#[derive(Debug, Clone)]
pub struct ClusterService {
    cluster: Arc<ClusterState>,
    models: Arc<ModelSet>,
    keep_alives: Arc<KeepAlives>,
    security: Arc<Security>,
    pipeline: Option<Arc<Pipeline>>,
}

impl ClusterService {
    /// A view over `cluster`, the cluster's model set and the models' keep-alives.
    pub fn new(
        cluster: Arc<ClusterState>,
        models: Arc<ModelSet>,
        keep_alives: Arc<KeepAlives>,
    ) -> Self {
        ClusterService {
            cluster,
            models,
            keep_alives,
            security: Security::insecure(),
            pipeline: None,
        }
    }

    /// Installs and rolls back fitted routers on `pipeline`.
    pub fn with_router(mut self, pipeline: Arc<Pipeline>) -> Self {
        self.pipeline = Some(pipeline);
        self
    }

    fn pipeline(&self) -> Result<&Arc<Pipeline>, Status> {
        self.pipeline
            .as_ref()
            .ok_or_else(|| ErrorClass::Unavailable.status("this controller has no pipeline"))
    }

    /// Revokes removed nodes' certificates under `security` (mTLS).
    pub fn with_security(mut self, security: Arc<Security>) -> Self {
        self.security = security;
        self
    }
}

/// The wire view of the router slots.
fn router_status(model: &str, slots: &Slots) -> RouterStatus {
    let active = slots.active.as_deref();
    RouterStatus {
        fitted: active.is_some(),
        model: model.to_owned(),
        tiers: active
            .map(|h| h.tiers.iter().map(ToString::to_string).collect())
            .unwrap_or_default(),
        embedder: active.map(|h| h.embedder.clone()).unwrap_or_default(),
        sha256: active.map(|h| h.sha256.clone()).unwrap_or_default(),
        previous_sha256: slots
            .previous
            .as_ref()
            .map(|p| p.as_ref().map(|h| h.sha256.clone()).unwrap_or_default()),
    }
}

/// Every model of the set, then every model only attached engines serve, with where each
/// is loaded, when each copy expires and which ready nodes have its files.
pub fn model_statuses(
    cluster: &ClusterState,
    set: &ModelSet,
    keep_alives: &KeepAlives,
) -> Vec<ModelStatus> {
    let models = set.snapshot();
    let resident = cluster.resident();
    let nodes = cluster.snapshot();
    let available_on = |name: &str| -> Vec<String> {
        nodes
            .iter()
            .filter(|n| n.state == NodeState::Ready as i32)
            .filter_map(|n| n.info.as_ref())
            .filter(|info| info.available_models.iter().any(|m| m == name))
            .map(|info| info.node_name.clone())
            .collect()
    };
    let devices = || {
        nodes
            .iter()
            .filter_map(|n| n.info.as_ref())
            .flat_map(|info| info.devices.iter().map(move |d| (&info.node_name, d)))
    };
    let kinds: HashMap<(&str, &str), i32> = devices()
        .map(|(node, d)| ((node.as_str(), d.id.as_str()), d.kind))
        .collect();
    let loaded_on = |name: &str| -> Vec<ModelPlacement> {
        resident
            .iter()
            .filter(|(_, r)| r.model == name)
            .map(|(node, r)| ModelPlacement {
                node: node.clone(),
                device_id: r.device_id.clone(),
                backend: r.backend.clone(),
                device_kind: kinds
                    .get(&(node.as_str(), r.device_id.as_str()))
                    .copied()
                    .unwrap_or_default(),
                expires_in_ms: keep_alives.expires_in_ms(r),
                layout: r.layout.clone(),
            })
            .collect()
    };
    let mut out: Vec<ModelStatus> = models
        .iter()
        .map(|spec| ModelStatus {
            name: spec.name.clone(),
            stage: switchyard_proto::convert::stage_to_wire(spec.stage),
            tier: spec.tier.clone().unwrap_or_default(),
            memory_bytes: spec.memory_bytes,
            loaded_on: loaded_on(&spec.name),
            context_tokens: spec.context_tokens.unwrap_or(0),
            embedding_dim: spec.embedding_dim.unwrap_or(0),
            sha256: spec.sha256.clone().unwrap_or_default(),
            info: spec.info.clone().into_iter().collect(),
            format: if spec.engine.is_some() {
                "gguf"
            } else {
                "onnx"
            }
            .into(),
            engine: match &spec.engine {
                Some(e) => e.kind.as_str().to_string(),
                None => spec.backends.join(","),
            },
            file: match &spec.engine {
                Some(e) => e.gguf.display().to_string(),
                None => spec.onnx.display().to_string(),
            },
            source: if set.is_added(&spec.name) {
                "added"
            } else {
                "registry"
            }
            .into(),
            available_on: available_on(&spec.name),
        })
        .collect();
    let mut attached: Vec<(&str, &str)> = devices()
        .filter(|(_, d)| !d.engine.is_empty())
        .flat_map(|(_, d)| d.models.iter().map(|m| (m.as_str(), d.engine.as_str())))
        .filter(|(m, _)| models.get(m).is_none())
        .collect();
    attached.sort();
    attached.dedup_by(|a, b| a.0 == b.0);
    out.extend(attached.into_iter().map(|(name, engine)| ModelStatus {
        name: name.to_string(),
        stage: switchyard_proto::convert::stage_to_wire(
            switchyard_backend_core::StageKind::Generate,
        ),
        loaded_on: loaded_on(name),
        format: engine.to_string(),
        engine: engine.to_string(),
        source: "attached".into(),
        available_on: available_on(name),
        ..Default::default()
    }));
    out
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

    async fn add_model(
        &self,
        request: Request<AddModelRequest>,
    ) -> Result<Response<AddModelResponse>, Status> {
        let entry = request
            .into_inner()
            .model
            .ok_or_else(|| ErrorClass::InvalidArgument.status("model is required"))?;
        let model = switchyard_proto::model_entry::entry_from_wire(entry)
            .map_err(|e| ErrorClass::InvalidArgument.status(e))?;
        let name = model.name.clone();
        self.models.add(model).map_err(|e| e.status())?;
        tracing::info!(model = %name, "model added to the cluster");
        let status = model_statuses(&self.cluster, &self.models, &self.keep_alives)
            .into_iter()
            .find(|m| m.name == name);
        Ok(Response::new(AddModelResponse { model: status }))
    }

    async fn install_router(
        &self,
        request: Request<InstallRouterRequest>,
    ) -> Result<Response<RouterStatus>, Status> {
        let pipeline = self.pipeline()?;
        let head = RouterHead::from_json(&request.into_inner().router_json)
            .map_err(|e| ErrorClass::InvalidArgument.status(e.to_string()))?;
        let slots = pipeline
            .install_router(head)
            .await
            .map_err(|e| e.to_status())?;
        let status = router_status(pipeline.router_model(), &slots);
        tracing::info!(sha256 = %status.sha256, tiers = ?status.tiers, "fitted router installed");
        Ok(Response::new(status))
    }

    async fn rollback_router(
        &self,
        _request: Request<RollbackRouterRequest>,
    ) -> Result<Response<RouterStatus>, Status> {
        let pipeline = self.pipeline()?;
        let slots = pipeline
            .fitted_router()
            .rollback()
            .map_err(|e| ErrorClass::FailedPrecondition.status(e.to_string()))?;
        let status = router_status(pipeline.router_model(), &slots);
        tracing::info!(sha256 = %status.sha256, fitted = status.fitted, "router rolled back");
        Ok(Response::new(status))
    }

    async fn get_router(
        &self,
        _request: Request<GetRouterRequest>,
    ) -> Result<Response<RouterStatus>, Status> {
        let pipeline = self.pipeline()?;
        let slots = pipeline.fitted_router().slots();
        Ok(Response::new(router_status(
            pipeline.router_model(),
            &slots,
        )))
    }

    async fn remove_model(
        &self,
        request: Request<RemoveModelRequest>,
    ) -> Result<Response<RemoveModelResponse>, Status> {
        let name = request.into_inner().name;
        self.models.remove(&name).map_err(|e| e.status())?;
        tracing::info!(model = %name, "model removed from the cluster");
        Ok(Response::new(RemoveModelResponse {}))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        if let Some(Ok(id)) = switchyard_pki::identity::of_request(&request)
            && id.role != switchyard_pki::Role::Controller
        {
            return Err(ErrorClass::Unauthenticated.status(format!(
                "removing a node needs the controller's certificate, not node '{}'",
                id.name
            )));
        }
        let name = request.into_inner().node_name;
        if name.trim().is_empty() {
            return Err(ErrorClass::InvalidArgument.status("node_name must not be empty"));
        }
        let revoked = match self.security.mtls() {
            Some(m) => {
                m.revoked
                    .add(&name)
                    .map_err(|e| ErrorClass::Internal.status(e.to_string()))?;
                true
            }
            None => false,
        };
        let was_registered = self.cluster.remove(&name);
        Ok(Response::new(RemoveNodeResponse {
            was_registered,
            revoked,
        }))
    }
}
