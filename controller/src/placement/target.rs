//! A placed target — (node, device, backend) and how to reach it — and the guard that
//! counts it in flight.

use std::sync::Arc;
use std::time::Duration;

use crate::cluster::ClusterState;

/// A chosen (node, device, backend) and how to reach it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Node name.
    pub node: String,
    /// Device id on that node.
    pub device: String,
    /// Backend id (`ort-cpu`, `openvino`, ...).
    pub backend: String,
    /// The node's agent data-path endpoint.
    pub endpoint: String,
    /// How long one attempt may take: a batch call of the request's inputs, or a
    /// generation's wait for its first token.
    pub timeout: Duration,
    /// A generation's longest wait for each chunk after the first.
    pub gap_timeout: Duration,
    /// Every device of the target's node (a node-level failure affects them all).
    pub node_devices: Vec<String>,
    /// An attached engine (the pseudo-device of an endpoint the agent proxies to).
    pub engine: bool,
}

/// Counts a dispatched request against its device until dropped; placement sees the count
/// (concurrency-1 devices are skipped while busy).
#[derive(Debug)]
pub struct InFlight {
    cluster: Arc<ClusterState>,
    node: String,
    device: String,
}

impl InFlight {
    pub(crate) fn start(cluster: Arc<ClusterState>, target: &Target) -> Self {
        cluster.add_in_flight(&target.node, &target.device, 1);
        InFlight {
            cluster,
            node: target.node.clone(),
            device: target.device.clone(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.cluster.add_in_flight(&self.node, &self.device, -1);
    }
}
