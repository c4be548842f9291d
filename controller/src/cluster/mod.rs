//! The cluster: node state (the one writer), the placement view it keeps up to date, and
//! the gRPC services agents and operators talk to (Registry, Cluster).

pub mod cluster_service;
pub mod node_view;
pub mod registry_service;
mod state;
pub mod store;

pub use state::{ClusterError, ClusterState, NodeEntry, NodeRef};
pub use store::{Snapshot, ViewStore};
