//! Cluster state: the nodes the controller knows, their inventories, telemetry, liveness and
//! command channels. Registration, heartbeats and session ends update it; the liveness
//! sweep turns silent nodes `lost`. It is the one writer of the placement [`ViewStore`]:
//! every change to a node is applied to the scheduler's view as it happens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use switchyard_proto::v1::{
    ControllerCommand, Heartbeat, NodeInfo, NodeState, NodeStatus, ResidentModel,
};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::node_view::node_view;
use super::store::{Snapshot, ViewStore};

/// Why a registration was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ClusterError {
    /// Another live agent process already registered under this node name.
    #[error(
        "node name '{name}' is already held by a live agent (endpoint {endpoint}, last heartbeat {age_ms} ms ago); give this agent another --node-name or stop the other one"
    )]
    NameTaken {
        /// The contested node name.
        name: String,
        /// Agent endpoint of the node holding the name.
        endpoint: String,
        /// Time since that node was last heard from, ms.
        age_ms: u128,
    },
    /// No registered node has this node id (the payload); the agent must register first.
    #[error("unknown lease for node '{0}': register first")]
    UnknownLease(String),
    /// The lease presented is not the node's current one: a newer registration replaced it.
    /// The payload is the node name.
    #[error("lease for node '{0}' was replaced by a newer registration")]
    Superseded(String),
}

/// Everything the controller holds about one node.
#[derive(Debug)]
pub struct NodeEntry {
    /// Controller-assigned id (`<name>-<8 hex>`), kept across re-registrations.
    pub node_id: String,
    /// Id of the current registration; a new registration replaces it.
    pub lease_id: String,
    /// Id of the agent process that registered (random per process), so a reconnect by the
    /// same process can reclaim its name.
    pub instance_id: String,
    /// What the agent reported: name, endpoint, host, devices, models.
    pub info: NodeInfo,
    /// Liveness state; this module sets only `Ready` and `Lost`.
    pub state: NodeState,
    /// Why the node entered its current state (`registered`, `missed 3 heartbeats`, ...).
    pub state_reason: String,
    /// When the node was last heard from: registration, session attach or heartbeat.
    pub last_seen: Instant,
    /// Heartbeats received since the node first registered.
    pub heartbeats: u64,
    /// Increases with every session attached; a closing session only affects its own epoch.
    pub session_epoch: u64,
    /// Command channel of the attached session; `None` while no session is attached.
    pub commands: Option<mpsc::Sender<ControllerCommand>>,
}

/// Shared, cheap-to-clone handle to one node's entry.
pub type NodeRef = Arc<Mutex<NodeEntry>>;

/// The cluster as the controller sees it.
#[derive(Debug)]
pub struct ClusterState {
    nodes: RwLock<HashMap<String, NodeRef>>,
    /// Agents send a heartbeat this often.
    pub heartbeat_interval: Duration,
    /// Heartbeats missed before a node is `lost`.
    pub missed_before_lost: u32,
    next_command: std::sync::atomic::AtomicU64,
    view: ViewStore,
    /// Counts nodes turning lost; [`ClusterState::until_lost`] waits on it.
    losses: watch::Sender<u64>,
}

impl ClusterState {
    /// An empty cluster.
    pub fn new(heartbeat_interval: Duration, missed_before_lost: u32) -> Self {
        ClusterState {
            nodes: RwLock::new(HashMap::new()),
            heartbeat_interval,
            missed_before_lost: missed_before_lost.max(1),
            next_command: std::sync::atomic::AtomicU64::new(1),
            view: ViewStore::default(),
            losses: watch::channel(0).0,
        }
    }

    /// The placement view (cheap: an `Arc` clone of the latest snapshot).
    pub fn view(&self) -> Arc<Snapshot> {
        self.view.snapshot()
    }

    /// Adds `delta` to the controller's in-flight count of a device (see
    /// [`crate::placement::InFlight`]).
    pub(crate) fn add_in_flight(&self, node: &str, device: &str, delta: i32) {
        self.view.add_in_flight(node, device, delta);
    }

    /// Applies an entry's current state to the placement view (called with the entry
    /// locked, so the view follows the entries in order).
    fn publish(&self, e: &NodeEntry) {
        self.view.upsert(
            node_view(&e.info, e.state == NodeState::Ready),
            e.info.agent_endpoint.clone(),
        );
    }

    /// Registers (or re-registers) a node. A live node's name is refused unless the same
    /// agent process (same `instance_id`) is reconnecting. Returns `(node_id, lease_id)`.
    pub fn register(
        &self,
        info: NodeInfo,
        instance_id: &str,
    ) -> Result<(String, String), ClusterError> {
        let name = info.node_name.clone();
        let lease_id = uuid::Uuid::new_v4().to_string();
        let mut nodes = self.nodes.write().expect("nodes lock");
        if let Some(existing) = nodes.get(&name) {
            let mut e = existing.lock().expect("node lock");
            let live = e.state != NodeState::Lost;
            if live && e.instance_id != instance_id {
                return Err(ClusterError::NameTaken {
                    name,
                    endpoint: e.info.agent_endpoint.clone(),
                    age_ms: e.last_seen.elapsed().as_millis(),
                });
            }
            // Same agent reconnecting, or a lost node coming back: keep the node id.
            e.lease_id = lease_id.clone();
            e.instance_id = instance_id.to_string();
            e.info = info;
            e.state = NodeState::Ready;
            e.state_reason = "re-registered".into();
            e.last_seen = Instant::now();
            e.commands = None;
            e.session_epoch += 1;
            self.publish(&e);
            info!(node = %name, node_id = %e.node_id, "node re-registered");
            return Ok((e.node_id.clone(), lease_id));
        }
        let node_id = format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let entry = NodeEntry {
            node_id: node_id.clone(),
            lease_id: lease_id.clone(),
            instance_id: instance_id.to_string(),
            info,
            state: NodeState::Ready,
            state_reason: "registered".into(),
            last_seen: Instant::now(),
            heartbeats: 0,
            session_epoch: 0,
            commands: None,
        };
        self.publish(&entry);
        nodes.insert(name.clone(), Arc::new(Mutex::new(entry)));
        info!(node = %name, %node_id, "node registered");
        Ok((node_id, lease_id))
    }

    /// Attaches a session (its command channel) to the node holding this lease. Returns the
    /// node handle and the session epoch to pass to heartbeats and [`Self::session_closed`].
    pub fn attach_session(
        &self,
        node_id: &str,
        lease_id: &str,
        commands: mpsc::Sender<ControllerCommand>,
    ) -> Result<(NodeRef, u64), ClusterError> {
        let nodes = self.nodes.read().expect("nodes lock");
        for node in nodes.values() {
            let mut e = node.lock().expect("node lock");
            if e.node_id == node_id {
                if e.lease_id != lease_id {
                    return Err(ClusterError::Superseded(e.info.node_name.clone()));
                }
                e.session_epoch += 1;
                e.commands = Some(commands);
                e.state = NodeState::Ready;
                e.last_seen = Instant::now();
                self.view.set_ready(&e.info.node_name, true);
                return Ok((node.clone(), e.session_epoch));
            }
        }
        Err(ClusterError::UnknownLease(node_id.to_string()))
    }

    /// Records a heartbeat on the node of an attached session. Returns false when the
    /// session was superseded (the caller should end it).
    pub fn heartbeat(&self, node: &NodeRef, epoch: u64, hb: Heartbeat) -> bool {
        let mut e = node.lock().expect("node lock");
        if e.session_epoch != epoch {
            return false;
        }
        e.last_seen = Instant::now();
        e.heartbeats += 1;
        if e.state == NodeState::Lost {
            e.state = NodeState::Ready;
            e.state_reason = "heartbeats resumed".into();
        }
        if let Some(inv) = hb.inventory {
            e.info.devices = inv.devices;
            e.info.host = inv.host;
            e.info.available_models = inv.available_models;
        }
        for t in hb.telemetry {
            if let Some(d) = e.info.devices.iter_mut().find(|d| d.id == t.device_id) {
                d.memory_free_bytes = t.memory_free_bytes;
                if t.health != 0 {
                    d.health = t.health;
                }
                d.telemetry = Some(t);
            }
        }
        e.info.resident_models = hb.resident_models;
        self.publish(&e);
        true
    }

    /// Marks the node lost when its session (of `epoch`) ends.
    pub fn session_closed(&self, node: &NodeRef, epoch: u64, reason: &str) {
        let mut e = node.lock().expect("node lock");
        if e.session_epoch == epoch && e.state != NodeState::Lost {
            e.state = NodeState::Lost;
            e.state_reason = reason.to_string();
            e.commands = None;
            self.view.set_ready(&e.info.node_name, false);
            self.losses.send_modify(|n| *n += 1);
            warn!(node = %e.info.node_name, reason, "node lost");
        }
    }

    /// Drops `name` from the cluster: its session's command stream closes and its heartbeats
    /// are refused (the epoch moves on). Returns whether it was registered.
    pub fn remove(&self, name: &str) -> bool {
        let Some(node) = self.nodes.write().expect("nodes lock").remove(name) else {
            return false;
        };
        let mut e = node.lock().expect("node lock");
        e.session_epoch += 1;
        e.commands = None;
        e.state = NodeState::Lost;
        e.state_reason = "removed".into();
        self.view.remove(name);
        warn!(node = %name, "node removed from the cluster");
        true
    }

    /// Turns nodes that missed `missed_before_lost` heartbeats into `lost`.
    pub fn sweep(&self) {
        let limit = self.heartbeat_interval * self.missed_before_lost;
        let nodes = self.nodes.read().expect("nodes lock");
        for node in nodes.values() {
            let mut e = node.lock().expect("node lock");
            if e.state != NodeState::Lost && e.last_seen.elapsed() > limit {
                e.state = NodeState::Lost;
                e.state_reason = format!("missed {} heartbeats", self.missed_before_lost);
                e.commands = None;
                self.view.set_ready(&e.info.node_name, false);
                self.losses.send_modify(|n| *n += 1);
                warn!(node = %e.info.node_name, "node lost: missed heartbeats");
            }
        }
    }

    /// True while `node` is registered and ready.
    pub fn is_ready(&self, node: &str) -> bool {
        self.nodes
            .read()
            .expect("nodes lock")
            .get(node)
            .is_some_and(|n| n.lock().expect("node lock").state == NodeState::Ready)
    }

    /// Resolves once `node` is no longer ready (lost: silent or its session ended), so work
    /// in flight there is re-placed at once rather than when its timeout runs out.
    pub async fn until_lost(&self, node: &str) {
        let mut losses = self.losses.subscribe();
        while self.is_ready(node) {
            if losses.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Status of every node, sorted by name.
    pub fn snapshot(&self) -> Vec<NodeStatus> {
        let nodes = self.nodes.read().expect("nodes lock");
        let mut out: Vec<NodeStatus> = nodes
            .values()
            .map(|n| {
                let e = n.lock().expect("node lock");
                NodeStatus {
                    node_id: e.node_id.clone(),
                    info: Some(e.info.clone()),
                    state: e.state as i32,
                    last_heartbeat_age_ms: e.last_seen.elapsed().as_millis() as u64,
                    heartbeats_received: e.heartbeats,
                }
            })
            .collect();
        out.sort_by(|a, b| {
            let name = |s: &NodeStatus| {
                s.info
                    .as_ref()
                    .map(|i| i.node_name.clone())
                    .unwrap_or_default()
            };
            name(a).cmp(&name(b))
        });
        out
    }

    /// Node handles, for readers that need more than the snapshot (scheduler views).
    pub fn nodes(&self) -> Vec<NodeRef> {
        self.nodes
            .read()
            .expect("nodes lock")
            .values()
            .cloned()
            .collect()
    }

    /// A fresh command id (commands are numbered across all sessions).
    pub fn next_command_id(&self) -> u64 {
        self.next_command
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Sends a command to a node's session; false when it has none.
    pub fn send_command(
        &self,
        node_name: &str,
        kind: switchyard_proto::v1::controller_command::Kind,
    ) -> bool {
        let sender = {
            let nodes = self.nodes.read().expect("nodes lock");
            nodes
                .get(node_name)
                .and_then(|n| n.lock().expect("node lock").commands.clone())
        };
        let id = self.next_command_id();
        sender
            .map(|s| {
                s.try_send(ControllerCommand {
                    id,
                    kind: Some(kind),
                })
                .is_ok()
            })
            .unwrap_or(false)
    }

    /// Resident models reported by every ready node: `(node, resident)`.
    pub fn resident(&self) -> Vec<(String, ResidentModel)> {
        let nodes = self.nodes.read().expect("nodes lock");
        let mut out = Vec::new();
        for n in nodes.values() {
            let e = n.lock().expect("node lock");
            if e.state == NodeState::Ready {
                for r in &e.info.resident_models {
                    out.push((e.info.node_name.clone(), r.clone()));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str) -> NodeInfo {
        NodeInfo {
            node_name: name.into(),
            agent_endpoint: "http://127.0.0.1:1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn until_lost_waits_while_the_node_is_ready_and_resolves_when_it_is_lost() {
        let c = Arc::new(ClusterState::new(Duration::from_millis(1), 3));
        let (id, lease) = c.register(info("a"), "inst-1").unwrap();
        let (tx, _rx) = mpsc::channel(1);
        let (node, epoch) = c.attach_session(&id, &lease, tx).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let waiter = tokio::spawn({
                let c = c.clone();
                async move { c.until_lost("a").await }
            });
            tokio::task::yield_now().await;
            assert!(!waiter.is_finished(), "a ready node is not lost");
            c.session_closed(&node, epoch, "test");
            waiter.await.unwrap();
            // Already lost (or never known): resolves at once.
            c.until_lost("a").await;
            c.until_lost("nobody").await;
        });
    }

    #[test]
    fn duplicate_live_name_is_refused_but_same_instance_reconnects() {
        let c = ClusterState::new(Duration::from_secs(1), 3);
        let (id, lease) = c.register(info("a"), "inst-1").unwrap();
        let err = c.register(info("a"), "inst-2").unwrap_err();
        assert!(matches!(err, ClusterError::NameTaken { .. }));
        assert!(err.to_string().contains("--node-name"), "{err}");
        let (id2, lease2) = c.register(info("a"), "inst-1").unwrap();
        assert_eq!(id, id2);
        assert_ne!(lease, lease2);
        let (tx, _rx) = mpsc::channel(1);
        assert_eq!(
            c.attach_session(&id, &lease, tx.clone()).unwrap_err(),
            ClusterError::Superseded("a".into())
        );
        assert!(c.attach_session(&id, &lease2, tx).is_ok());
    }

    #[test]
    fn session_end_and_silence_make_a_node_lost_and_a_lost_name_can_be_retaken() {
        let c = ClusterState::new(Duration::from_millis(1), 3);
        let (id, lease) = c.register(info("a"), "inst-1").unwrap();
        let (tx, _rx) = mpsc::channel(1);
        let (node, epoch) = c.attach_session(&id, &lease, tx).unwrap();
        assert!(c.heartbeat(&node, epoch, Heartbeat::default()));
        assert!(!c.heartbeat(&node, epoch + 1, Heartbeat::default()));
        std::thread::sleep(Duration::from_millis(10));
        c.sweep();
        assert_eq!(c.snapshot()[0].state, NodeState::Lost as i32);
        // A new agent process may take over a lost name.
        assert!(c.register(info("a"), "inst-2").is_ok());
        assert_eq!(c.snapshot()[0].state, NodeState::Ready as i32);
        let (tx, _rx) = mpsc::channel(1);
        let lease2 = c.register(info("a"), "inst-2").unwrap().1;
        let (node, epoch) = c.attach_session(&id, &lease2, tx).unwrap();
        c.session_closed(&node, epoch - 1, "old session");
        assert_eq!(c.snapshot()[0].state, NodeState::Ready as i32);
        c.session_closed(&node, epoch, "stream ended");
        assert_eq!(c.snapshot()[0].state, NodeState::Lost as i32);
    }
}
