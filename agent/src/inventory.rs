//! Where the agent's inventory comes from. The binary plugs in real discovery; tests and
//! simulated nodes plug in a fixed list. Either way the session code is the same.

use switchyard_proto::v1::{Device, DeviceTelemetry, HostFacts};

/// A source of the node's devices and their live telemetry.
pub trait InventorySource: Send {
    /// Full scan: host facts and devices (called at start and periodically for hot-plug).
    fn scan(&mut self) -> (HostFacts, Vec<Device>);
    /// Fresh telemetry for the devices of the last scan.
    fn telemetry(&mut self, devices: &[Device]) -> Vec<DeviceTelemetry>;
}

/// A fixed inventory (simulated nodes, tests): telemetry repeats the static figures.
#[derive(Debug, Clone)]
pub struct StaticInventory {
    /// Host facts returned by every scan.
    pub host: HostFacts,
    /// Devices returned by every scan; their static figures double as telemetry.
    pub devices: Vec<Device>,
}

impl InventorySource for StaticInventory {
    fn scan(&mut self) -> (HostFacts, Vec<Device>) {
        (self.host.clone(), self.devices.clone())
    }

    fn telemetry(&mut self, devices: &[Device]) -> Vec<DeviceTelemetry> {
        devices
            .iter()
            .map(|d| DeviceTelemetry {
                device_id: d.id.clone(),
                memory_free_bytes: d.memory_free_bytes,
                health: d.health,
                ..d.telemetry.clone().unwrap_or_default()
            })
            .collect()
    }
}
