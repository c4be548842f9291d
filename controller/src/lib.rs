//! The Switchyard controller: cluster state, the registry and cluster gRPC services, the
//! liveness sweep, and (in later modules) placement, the pipeline and client APIs.

pub mod cluster;
pub mod cluster_service;
pub mod config;
pub mod metrics;
pub mod pipeline;
pub mod registry_service;
pub mod residency;
pub mod server;

use switchyard_backend_core::StageKind;

/// Proto stage kind of a core stage kind.
pub fn stage_to_proto(stage: StageKind) -> switchyard_proto::v1::StageKind {
    match stage {
        StageKind::Classify => switchyard_proto::v1::StageKind::Classify,
        StageKind::Embed => switchyard_proto::v1::StageKind::Embed,
        StageKind::Generate => switchyard_proto::v1::StageKind::Generate,
    }
}
