//! The scheduler's view of the cluster, kept up to date incrementally (kube-rs
//! `reflector::Store` is the model): one writer — [`super::ClusterState`] — applies each
//! registration, heartbeat, loss and in-flight change to a [`ClusterView`] in place; readers
//! (placement, explain, residency) take a snapshot, which is one `Arc` clone.
//!
//! Copy-on-write: a write while a reader still holds the previous snapshot clones it once
//! (`Arc::make_mut`); otherwise the view is edited in place, touching only the entries that
//! changed.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use switchyard_scheduler::view::{ClusterView, NodeView};
use tracing::warn;

/// One consistent picture of the cluster for placement: the view plus how to reach each
/// node's agent.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Nodes and devices as the scheduler reads them.
    pub view: ClusterView,
    /// Node name → agent data-path endpoint.
    pub endpoints: HashMap<String, String>,
}

impl Snapshot {
    /// The agent endpoint of `node` (empty when unknown).
    pub fn endpoint(&self, node: &str) -> &str {
        self.endpoints.get(node).map_or("", String::as_str)
    }

    /// Ids of every device of `node` (a node-level failure affects them all).
    pub fn node_devices(&self, node: &str) -> Vec<String> {
        self.view
            .node(node)
            .map(|n| n.devices.iter().map(|d| d.id.clone()).collect())
            .unwrap_or_default()
    }
}

/// The store: one writer applies events, many readers snapshot.
#[derive(Debug, Default)]
pub struct ViewStore {
    current: RwLock<Arc<Snapshot>>,
}

impl ViewStore {
    /// The current snapshot (cheap: an `Arc` clone).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().expect("view store").clone()
    }

    fn write<R>(&self, edit: impl FnOnce(&mut Snapshot) -> R) -> R {
        let mut guard = self.current.write().expect("view store");
        edit(Arc::make_mut(&mut guard))
    }

    /// Adds or replaces a node. In-flight counts are the controller's own bookkeeping, not
    /// the agent's: they carry over from the previous version of the node.
    pub fn upsert(&self, mut node: NodeView, endpoint: String) {
        self.write(|s| {
            if let Some(old) = s.view.node(&node.name) {
                for d in &mut node.devices {
                    if let Some(prev) = old.devices.iter().find(|p| p.id == d.id) {
                        d.in_flight = prev.in_flight;
                    }
                }
            }
            let name = node.name.clone();
            if let Err(e) = s.view.upsert_node(node) {
                warn!(node = %name, error = %e, "node left out of the placement view");
                s.view.remove_node(&name);
                s.endpoints.remove(&name);
                return;
            }
            s.endpoints.insert(name, endpoint);
        });
    }

    /// Drops a node.
    pub fn remove(&self, node: &str) {
        self.write(|s| {
            s.view.remove_node(node);
            s.endpoints.remove(node);
        });
    }

    /// Marks a node ready or not (lost, draining).
    pub fn set_ready(&self, node: &str, ready: bool) {
        self.write(|s| s.view.set_node_ready(node, ready));
    }

    /// Adds `delta` to the controller's in-flight count of one device.
    pub fn add_in_flight(&self, node: &str, device: &str, delta: i32) {
        self.write(|s| {
            s.view.update_device(node, device, |d| {
                d.in_flight = d.in_flight.saturating_add_signed(delta);
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_backend_core::DeviceType;
    use switchyard_scheduler::view::DeviceView;

    fn node(name: &str, free: u64) -> NodeView {
        let mut d = DeviceView::new("cpu", DeviceType::Cpu);
        d.memory_free_bytes = free;
        NodeView::new(name, vec![d])
    }

    #[test]
    fn readers_keep_their_snapshot_while_the_writer_moves_on() {
        let store = ViewStore::default();
        store.upsert(node("a", 1), "http://a:1".into());
        let before = store.snapshot();
        store.upsert(node("a", 2), "http://a:1".into());
        store.set_ready("a", false);
        assert_eq!(before.view.device("a", "cpu").unwrap().memory_free_bytes, 1);
        assert!(before.view.node("a").unwrap().ready);
        let after = store.snapshot();
        assert_eq!(after.view.device("a", "cpu").unwrap().memory_free_bytes, 2);
        assert!(!after.view.node("a").unwrap().ready);
        assert_eq!(after.endpoint("a"), "http://a:1");
        assert_eq!(after.node_devices("a"), vec!["cpu".to_string()]);
    }

    #[test]
    fn in_flight_counts_survive_heartbeats_and_never_go_negative() {
        let store = ViewStore::default();
        store.upsert(node("a", 1), "http://a:1".into());
        store.add_in_flight("a", "cpu", 1);
        store.add_in_flight("a", "cpu", 1);
        store.upsert(node("a", 5), "http://a:1".into());
        assert_eq!(
            store.snapshot().view.device("a", "cpu").unwrap().in_flight,
            2
        );
        for _ in 0..3 {
            store.add_in_flight("a", "cpu", -1);
        }
        assert_eq!(
            store.snapshot().view.device("a", "cpu").unwrap().in_flight,
            0
        );
    }
}
