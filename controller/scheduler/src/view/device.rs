//! One device and one node as the controller last saw them: the plain data placement reads,
//! filled from registrations and heartbeats (telemetry included).

use switchyard_backend_core::{DeviceType, Precision};

/// Every device kind, in a fixed order (the index used by per-kind tables).
pub const DEVICE_KINDS: [DeviceType; 6] = [
    DeviceType::Cpu,
    DeviceType::NvidiaGpu,
    DeviceType::IntelGpu,
    DeviceType::IntelNpu,
    DeviceType::Ncs2,
    DeviceType::VulkanGpu,
];

/// Index of a precision in per-precision tables.
pub(crate) fn precision_index(p: Precision) -> usize {
    match p {
        Precision::F32 => 0,
        Precision::F16 => 1,
        Precision::Bf16 => 2,
    }
}

/// Index of a device kind in [`DEVICE_KINDS`].
pub(crate) fn kind_index(kind: DeviceType) -> usize {
    match kind {
        DeviceType::Cpu => 0,
        DeviceType::NvidiaGpu => 1,
        DeviceType::IntelGpu => 2,
        DeviceType::IntelNpu => 3,
        DeviceType::Ncs2 => 4,
        DeviceType::VulkanGpu => 5,
    }
}

/// Snake-case name of a device kind (`cpu`, `nvidia_gpu`, `intel_gpu`, `intel_npu`, `ncs2`, `vulkan_gpu`).
pub fn kind_name(kind: DeviceType) -> &'static str {
    match kind {
        DeviceType::Cpu => "cpu",
        DeviceType::NvidiaGpu => "nvidia_gpu",
        DeviceType::IntelGpu => "intel_gpu",
        DeviceType::IntelNpu => "intel_npu",
        DeviceType::Ncs2 => "ncs2",
        DeviceType::VulkanGpu => "vulkan_gpu",
    }
}

/// One device as the controller last saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceView {
    /// Inventory id, unique within its node (UUID, PCI address, `cpu`).
    pub id: String,
    /// Device family.
    pub kind: DeviceType,
    /// The agent reports the device usable (driver up, no fatal error).
    pub healthy: bool,
    /// Total memory the device can give to models, in bytes (host RAM for the CPU); 0 when
    /// unknown (then no headroom is reserved and the free-memory score term is 0).
    pub memory_total_bytes: u64,
    /// Memory free right now, in bytes.
    pub memory_free_bytes: u64,
    /// Memory held by idle, unpinned resident models: the agent evicts them (least recently
    /// used first) to make room, so a model fits when it fits in free + reclaimable.
    pub reclaimable_bytes: u64,
    /// Catalog or device-property INT8 TOPS (0 when unknown).
    pub tops: f64,
    /// TOPS measured by the agent's probe; preferred over [`DeviceView::tops`] when known.
    pub measured_tops: Option<f64>,
    /// Backend ids that were probed and work on this device (`ort-cpu`, `openvino`...),
    /// in the agent's order of preference.
    pub backends: Vec<String>,
    /// Requests running or queued on the device right now.
    pub in_flight: u32,
    /// Requests the device accepts at once, queue included; 0 means unbounded. NPUs and NCS2
    /// sticks are concurrency-1 queues (see [`DeviceView::default_max_concurrency`]).
    pub max_concurrency: u32,
    /// Models loaded on the device (warm).
    pub resident_models: Vec<String>,
    /// A simulated device (fixture): never placed unless the policy allows simulated
    /// devices (a cluster started on fixtures).
    pub simulated: bool,
    /// An engine Switchyard did not start (an attached endpoint): the models it serves. It
    /// serves exactly these (the node's `available_models` do not apply) and manages its
    /// own memory (no fit check). `None` for devices Switchyard loads models on.
    pub engine_models: Option<Vec<String>>,
    /// The precisions each backend computes at on this device (probed by the agent); a
    /// backend not listed here computes at f32 only.
    pub precisions: Vec<(String, Vec<Precision>)>,
    /// Utilisation 0–1 the agent reports (`None`: not reported).
    pub utilization: Option<f64>,
    /// Temperature the agent reports, °C.
    pub temperature_celsius: Option<f64>,
    /// The temperature at which the device throttles, °C (`None`: the policy's default).
    pub throttle_celsius: Option<f64>,
    /// Power draw the agent reports, watts.
    pub power_watts: Option<f64>,
    /// The power cap the device enforces, watts.
    pub power_limit_watts: Option<f64>,
    /// Requests the agent reports queued or running on the device (its resident models'
    /// in-flight counts, whoever sent them).
    pub queue_depth: u32,
    /// Backends the agent knows of but cannot use here, with why (`llama_cpp`: "no
    /// llama-server: …"): named when a model needs one of them.
    pub unusable_backends: Vec<(String, String)>,
    /// Which build of each usable engine backend serves the device (`llama_cpp` → "cpu
    /// build"), for explanations.
    pub engine_builds: Vec<(String, String)>,
}

impl DeviceView {
    /// A healthy device with no memory, no backends and the kind's default concurrency.
    pub fn new(id: impl Into<String>, kind: DeviceType) -> Self {
        DeviceView {
            id: id.into(),
            kind,
            healthy: true,
            memory_total_bytes: 0,
            memory_free_bytes: 0,
            reclaimable_bytes: 0,
            tops: 0.0,
            measured_tops: None,
            backends: Vec::new(),
            in_flight: 0,
            max_concurrency: Self::default_max_concurrency(kind),
            resident_models: Vec::new(),
            simulated: false,
            engine_models: None,
            precisions: Vec::new(),
            utilization: None,
            temperature_celsius: None,
            throttle_celsius: None,
            power_watts: None,
            power_limit_watts: None,
            queue_depth: 0,
            unusable_backends: Vec::new(),
            engine_builds: Vec::new(),
        }
    }

    /// Whether `backend` computes at `precision` here (unlisted backends: f32 only).
    pub fn backend_computes_at(&self, backend: &str, precision: Precision) -> bool {
        match self.precisions.iter().find(|(b, _)| b == backend) {
            Some((_, ps)) => ps.contains(&precision),
            None => precision == Precision::F32,
        }
    }

    /// 1 for NPUs and NCS2 sticks (they serve one request at a time), 0 (unbounded) otherwise.
    pub fn default_max_concurrency(kind: DeviceType) -> u32 {
        match kind {
            DeviceType::IntelNpu | DeviceType::Ncs2 => 1,
            DeviceType::Cpu
            | DeviceType::NvidiaGpu
            | DeviceType::IntelGpu
            | DeviceType::VulkanGpu => 0,
        }
    }

    /// Measured TOPS when known (and finite, positive), else the catalog figure.
    pub fn effective_tops(&self) -> (f64, bool) {
        match self.measured_tops {
            Some(t) if t.is_finite() && t > 0.0 => (t, true),
            _ => (sanitize(self.tops), false),
        }
    }
}

/// One node as the controller last saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    /// Node name, unique in the cluster.
    pub name: String,
    /// `true` when the node state is `ready`; `false` for `lost` or `draining`.
    pub ready: bool,
    /// The node's devices.
    pub devices: Vec<DeviceView>,
    /// Models whose files the node's agent has; `None` when not reported (any model may be
    /// placed there). A model missing here is never placed on the node.
    pub available_models: Option<Vec<String>>,
}

impl NodeView {
    /// A ready node.
    pub fn new(name: impl Into<String>, devices: Vec<DeviceView>) -> Self {
        NodeView {
            name: name.into(),
            ready: true,
            devices,
            available_models: None,
        }
    }
}

fn sanitize(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 { x } else { 0.0 }
}
