//! The cluster snapshot the scheduler reads.
//!
//! [`NodeView`] and [`DeviceView`] are plain data the controller fills from heartbeats.
//! [`ClusterView`] owns them plus a compact, cache-friendly index (one hot entry per device,
//! backends as a bit mask, resident models as interned ids) that the placement loop scans.
//! Build it once with [`ClusterView::new`] and keep it up to date in place with
//! [`ClusterView::upsert_node`], [`ClusterView::update_device`], [`ClusterView::set_node_ready`]
//! and [`ClusterView::remove_node`]: each refreshes only what changed.

mod device;

use switchyard_backend_core::DeviceType;

pub use device::{DEVICE_KINDS, DeviceView, NodeView, kind_name};
pub(crate) use device::{kind_index, precision_index};

use crate::fxhash::{FxHashMap, device_key};

/// Why a view could not be built or updated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    /// Two nodes share a name.
    #[error("node {0:?} appears twice in the cluster view")]
    DuplicateNode(String),
    /// Two devices of one node share an id.
    #[error("device {device:?} appears twice on node {node:?}")]
    DuplicateDevice {
        /// The node.
        node: String,
        /// The repeated device id.
        device: String,
    },
}

/// The flattened, scan-friendly copy of one device (plus its node's readiness).
#[derive(Debug, Clone)]
pub(crate) struct HotDevice {
    /// Index of the node in [`ClusterView::nodes`].
    pub node: u32,
    /// Index of the device in its node's `devices`.
    pub device: u32,
    /// Device family.
    pub kind: DeviceType,
    /// The node is ready.
    pub node_ready: bool,
    /// The device is healthy.
    pub healthy: bool,
    /// The device is simulated.
    pub simulated: bool,
    /// Bit `i` set: backend `i` of the view's backend table is usable on this device.
    pub backend_mask: u64,
    /// Free memory, bytes.
    pub free: u64,
    /// Memory idle models hold that eviction can give back, bytes.
    pub reclaimable: u64,
    /// Total memory, bytes.
    pub total: u64,
    /// Effective TOPS (measured when known).
    pub tops: f64,
    /// Whether `tops` was measured.
    pub tops_measured: bool,
    /// Requests in flight.
    pub in_flight: u32,
    /// Requests accepted at once (0: unbounded).
    pub max_concurrency: u32,
    /// Interned ids of the resident models.
    pub resident: Box<[u32]>,
    /// Interned ids of the models the device can serve: an engine's own list, else those
    /// whose files the node has (`None`: not reported).
    pub available: Option<Box<[u32]>>,
    /// An attached engine: it manages its own memory.
    pub engine: bool,
    /// Bit `id % 64` set for every resident model id: a clear bit proves "not resident".
    pub resident_bits: u64,
    /// Hash of (node name, device id), the key of the latency EWMA table.
    pub key: u64,
    /// Per precision (by `precision_index`): bits of the backends computing at it here.
    pub precision_masks: [u64; 3],
    /// Reported utilisation, 0–1.
    pub utilization: Option<f64>,
    /// Reported temperature, °C.
    pub temperature: Option<f64>,
    /// Reported throttle point, °C.
    pub throttle: Option<f64>,
    /// Reported power draw, watts.
    pub power: Option<f64>,
    /// Reported power cap, watts.
    pub power_limit: Option<f64>,
    /// Requests the agent reports on the device.
    pub queue_depth: u32,
}

/// String → small id table (backends, models), grown on demand.
#[derive(Debug, Clone, Default)]
struct Interner {
    ids: FxHashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.ids.insert(name.to_owned(), id);
        self.names.push(name.to_owned());
        id
    }

    fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }
}

/// Most distinct backend ids a view tracks; ids seen after the 64th are never usable.
pub const MAX_BACKENDS: usize = 64;

/// The cluster snapshot: nodes and devices plus the index placement scans.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    nodes: Vec<NodeView>,
    node_index: FxHashMap<String, usize>,
    /// First hot index of each node (same order as `nodes`), plus a final end marker.
    node_start: Vec<usize>,
    hot: Vec<HotDevice>,
    /// Hot indices of each kind (by [`DEVICE_KINDS`] order), ascending.
    by_kind: [Vec<u32>; DEVICE_KINDS.len()],
    backends: Interner,
    models: Interner,
}

impl ClusterView {
    /// Builds the view and its index. Fails on duplicate node names or device ids.
    pub fn new(nodes: Vec<NodeView>) -> Result<Self, ViewError> {
        let mut view = ClusterView::default();
        for node in &nodes {
            check_node(node)?;
            if view.node_index.contains_key(&node.name) {
                return Err(ViewError::DuplicateNode(node.name.clone()));
            }
            view.node_index
                .insert(node.name.clone(), view.node_index.len());
        }
        view.nodes = nodes;
        view.rebuild_hot();
        Ok(view)
    }

    /// The nodes, in insertion order.
    pub fn nodes(&self) -> &[NodeView] {
        &self.nodes
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<&NodeView> {
        self.node_index.get(name).map(|&i| &self.nodes[i])
    }

    /// A device by node name and device id.
    pub fn device(&self, node: &str, device: &str) -> Option<&DeviceView> {
        self.node(node)?.devices.iter().find(|d| d.id == device)
    }

    /// Number of devices over all nodes.
    pub fn device_count(&self) -> usize {
        self.hot.len()
    }

    /// The flattened index, one entry per device (node order, then device order).
    pub(crate) fn hot(&self) -> &[HotDevice] {
        &self.hot
    }

    /// Indices into [`ClusterView::hot`] of the devices of one kind, ascending.
    pub(crate) fn devices_of_kind(&self, kind: DeviceType) -> &[u32] {
        &self.by_kind[kind_index(kind)]
    }

    /// Node and device of a hot entry.
    pub(crate) fn resolve(&self, hot: &HotDevice) -> (&NodeView, &DeviceView) {
        let node = &self.nodes[hot.node as usize];
        (node, &node.devices[hot.device as usize])
    }

    /// Adds a node or replaces the one with the same name. Only that node's entries are
    /// rebuilt when its device count is unchanged; otherwise the index is rebuilt.
    pub fn upsert_node(&mut self, node: NodeView) -> Result<(), ViewError> {
        check_node(&node)?;
        match self.node_index.get(&node.name).copied() {
            Some(i) => {
                let same_shape = self.nodes[i].devices.len() == node.devices.len();
                self.nodes[i] = node;
                if same_shape {
                    for d in 0..self.nodes[i].devices.len() {
                        self.refresh(i, d);
                    }
                } else {
                    self.rebuild_hot();
                }
            }
            None => {
                let i = self.nodes.len();
                self.node_index.insert(node.name.clone(), i);
                self.nodes.push(node);
                // Append its entries: the end marker moves.
                self.node_start.pop();
                self.node_start.push(self.hot.len());
                for d in 0..self.nodes[i].devices.len() {
                    let hot = self.make_hot(i, d);
                    self.by_kind[kind_index(hot.kind)].push(self.hot.len() as u32);
                    self.hot.push(hot);
                }
                self.node_start.push(self.hot.len());
            }
        }
        Ok(())
    }

    /// Removes a node (and its devices); returns it if it was there.
    pub fn remove_node(&mut self, name: &str) -> Option<NodeView> {
        let i = self.node_index.remove(name)?;
        let node = self.nodes.remove(i);
        for idx in self.node_index.values_mut() {
            if *idx > i {
                *idx -= 1;
            }
        }
        self.rebuild_hot();
        Some(node)
    }

    /// Marks a node ready or not (lost, draining). Returns `false` if the node is unknown.
    pub fn set_node_ready(&mut self, name: &str, ready: bool) -> bool {
        let Some(&i) = self.node_index.get(name) else {
            return false;
        };
        self.nodes[i].ready = ready;
        for h in &mut self.hot[self.node_start[i]..self.node_start[i + 1]] {
            h.node_ready = ready;
        }
        true
    }

    /// Edits one device in place (telemetry, in-flight count, residency) and refreshes its
    /// index entry. The device id cannot change: it is restored if `edit` changes it.
    /// Returns `false` if the node or device is unknown.
    pub fn update_device(
        &mut self,
        node: &str,
        device: &str,
        edit: impl FnOnce(&mut DeviceView),
    ) -> bool {
        let Some(&i) = self.node_index.get(node) else {
            return false;
        };
        let Some(d) = self.nodes[i].devices.iter().position(|x| x.id == device) else {
            return false;
        };
        let dev = &mut self.nodes[i].devices[d];
        edit(dev);
        if dev.id != device {
            dev.id = device.to_owned();
        }
        self.refresh(i, d);
        true
    }

    /// Bit of a backend id in [`HotDevice::backend_mask`], if any device lists it.
    pub(crate) fn backend_bit(&self, backend: &str) -> Option<u64> {
        self.backends
            .get(backend)
            .filter(|&id| (id as usize) < MAX_BACKENDS)
            .map(|id| 1u64 << id)
    }

    /// Backend id of a bit index.
    pub(crate) fn backend_name(&self, bit_index: u32) -> Option<&str> {
        self.backends
            .names
            .get(bit_index as usize)
            .map(String::as_str)
    }

    /// Interned id of a model name, if any device lists it as resident.
    pub(crate) fn model_id(&self, model: &str) -> Option<u32> {
        self.models.get(model)
    }

    fn rebuild_hot(&mut self) {
        self.hot.clear();
        self.node_start.clear();
        for i in 0..self.nodes.len() {
            self.node_start.push(self.hot.len());
            for d in 0..self.nodes[i].devices.len() {
                let hot = self.make_hot(i, d);
                self.hot.push(hot);
            }
        }
        self.node_start.push(self.hot.len());
        self.rebuild_by_kind();
    }

    fn rebuild_by_kind(&mut self) {
        for v in &mut self.by_kind {
            v.clear();
        }
        for (i, h) in self.hot.iter().enumerate() {
            self.by_kind[kind_index(h.kind)].push(i as u32);
        }
    }

    fn refresh(&mut self, node: usize, device: usize) {
        let hot = self.make_hot(node, device);
        let slot = &mut self.hot[self.node_start[node] + device];
        let kind_changed = slot.kind != hot.kind;
        *slot = hot;
        if kind_changed {
            self.rebuild_by_kind();
        }
    }

    fn make_hot(&mut self, i: usize, d: usize) -> HotDevice {
        let node = &self.nodes[i];
        let dev = &node.devices[d];
        let mut backend_mask = 0u64;
        let mut precision_masks = [0u64; 3];
        for b in &dev.backends {
            let id = self.backends.intern(b) as usize;
            if id < MAX_BACKENDS {
                backend_mask |= 1 << id;
                for p in switchyard_backend_core::PRECISIONS {
                    if dev.backend_computes_at(b, p) {
                        precision_masks[precision_index(p)] |= 1 << id;
                    }
                }
            }
        }
        let resident: Box<[u32]> = dev
            .resident_models
            .iter()
            .map(|m| self.models.intern(m))
            .collect();
        let resident_bits = resident.iter().fold(0u64, |m, id| m | resident_bit(*id));
        let available = dev
            .engine_models
            .as_ref()
            .or(node.available_models.as_ref())
            .map(|models| {
                models
                    .iter()
                    .map(|m| self.models.intern(m))
                    .collect::<Box<[u32]>>()
            });
        let (tops, tops_measured) = dev.effective_tops();
        HotDevice {
            node: i as u32,
            device: d as u32,
            kind: dev.kind,
            node_ready: node.ready,
            healthy: dev.healthy,
            simulated: dev.simulated,
            backend_mask,
            // Free above total is a reporting glitch: clamp (unless total is unknown, 0).
            free: if dev.memory_total_bytes == 0 {
                dev.memory_free_bytes
            } else {
                dev.memory_free_bytes.min(dev.memory_total_bytes)
            },
            reclaimable: dev.reclaimable_bytes,
            total: dev.memory_total_bytes,
            tops,
            tops_measured,
            in_flight: dev.in_flight,
            max_concurrency: dev.max_concurrency,
            resident,
            resident_bits,
            available,
            engine: dev.engine_models.is_some(),
            key: device_key(&node.name, &dev.id),
            precision_masks,
            utilization: finite(dev.utilization).map(|u| u.clamp(0.0, 1.0)),
            temperature: finite(dev.temperature_celsius),
            throttle: finite(dev.throttle_celsius),
            power: finite(dev.power_watts).filter(|p| *p >= 0.0),
            power_limit: finite(dev.power_limit_watts).filter(|p| *p > 0.0),
            queue_depth: dev.queue_depth,
        }
    }
}

/// A reported figure, or `None` when it is missing or not a number.
fn finite(x: Option<f64>) -> Option<f64> {
    x.filter(|v| v.is_finite())
}

/// The bit of a model id in [`HotDevice::resident_bits`].
#[inline]
pub(crate) fn resident_bit(model_id: u32) -> u64 {
    1u64 << (model_id % 64)
}

fn check_node(node: &NodeView) -> Result<(), ViewError> {
    for (i, d) in node.devices.iter().enumerate() {
        if node.devices[..i].iter().any(|o| o.id == d.id) {
            return Err(ViewError::DuplicateDevice {
                node: node.name.clone(),
                device: d.id.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
