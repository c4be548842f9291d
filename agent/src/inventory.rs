//! Where the agent's inventory comes from. The binary plugs in real discovery; tests and
//! simulated nodes plug in a fixed list. Either way the session code is the same.

use std::collections::HashMap;

use switchyard_backend_core::{DeviceRef, DeviceType};
use switchyard_proto::attributes::CUDA_ORDINAL;
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

/// Where the runtime executes each device of `devices` (same order): simulated devices on the
/// CPU; an NVIDIA GPU at its CUDA ordinal (discovery's PCI-bus-order rank, the order CUDA uses
/// under `CUDA_DEVICE_ORDER=PCI_BUS_ID`); other kinds at their rank among devices of the same
/// kind in inventory order (OpenVINO's `GPU.N`).
pub fn runtime_refs(devices: &[Device]) -> Vec<DeviceRef> {
    let mut ranks: HashMap<DeviceType, u32> = HashMap::new();
    devices
        .iter()
        .map(|d| {
            let ty = DeviceType::from(d.kind());
            let rank = ranks.entry(ty).or_default();
            let mut ordinal = *rank;
            *rank += 1;
            if ty == DeviceType::NvidiaGpu
                && let Some(o) = d.attributes.get(CUDA_ORDINAL).and_then(|o| o.parse().ok())
            {
                ordinal = o;
            }
            if d.simulated {
                DeviceRef::cpu()
            } else {
                DeviceRef {
                    id: d.id.clone(),
                    device_type: ty,
                    ordinal,
                }
            }
        })
        .collect()
}

/// A device with its volatile figures (free memory, live telemetry) cleared: what must be
/// re-sent to the controller when it changes.
fn state_of(d: &Device) -> Device {
    Device {
        memory_free_bytes: 0,
        telemetry: None,
        ..d.clone()
    }
}

/// What changed between two scans, one line per device (empty: nothing the controller must
/// hear about beyond telemetry). A device added or removed, and a device whose state
/// changed — health, its reason, backends, attributes (an NCS2 that boots and re-enumerates
/// as 03e7:f63b keeps its id but changes its USB id and node), model, memory size.
pub fn state_changes(before: &[Device], after: &[Device]) -> Vec<String> {
    let mut out = Vec::new();
    for d in after {
        match before.iter().find(|b| b.id == d.id) {
            None => out.push(format!("{}: appeared", d.id)),
            Some(b) if state_of(b) != state_of(d) => {
                let mut what = Vec::new();
                if b.health != d.health || b.health_reason != d.health_reason {
                    what.push(format!(
                        "health {} -> {}",
                        b.health().short_name(),
                        d.health().short_name()
                    ));
                }
                if b.attributes != d.attributes {
                    what.push("attributes".to_string());
                }
                if b.backends != d.backends {
                    what.push("backends".to_string());
                }
                if what.is_empty() {
                    what.push("description".to_string());
                }
                out.push(format!("{}: {}", d.id, what.join(", ")));
            }
            Some(_) => {}
        }
    }
    for b in before {
        if !after.iter().any(|d| d.id == b.id) {
            out.push(format!("{}: gone", b.id));
        }
    }
    if out.is_empty() && before.iter().map(|d| &d.id).ne(after.iter().map(|d| &d.id)) {
        out.push("device order".to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_proto::v1::{DeviceHealth, DeviceKind};

    fn ncs2(usb_id: &str, health: DeviceHealth) -> Device {
        Device {
            id: "usb-3-2".into(),
            kind: DeviceKind::Ncs2 as i32,
            health: health as i32,
            attributes: [("usb_id".to_string(), usb_id.to_string())].into(),
            memory_free_bytes: 1,
            ..Default::default()
        }
    }

    #[test]
    fn a_rebooted_stick_and_a_device_turning_unhealthy_are_state_changes() {
        let before = vec![ncs2("03e7:2485", DeviceHealth::Healthy)];
        // Same id, re-enumerated after its firmware booted.
        let booted = vec![ncs2("03e7:f63b", DeviceHealth::Healthy)];
        let changes = state_changes(&before, &booted);
        assert_eq!(changes, vec!["usb-3-2: attributes".to_string()]);
        let sick = vec![ncs2("03e7:2485", DeviceHealth::Unavailable)];
        assert_eq!(
            state_changes(&before, &sick),
            vec!["usb-3-2: health healthy -> unavailable".to_string()]
        );
        // Only live figures moved: nothing to re-send.
        let mut busy = before.clone();
        busy[0].memory_free_bytes = 7;
        busy[0].telemetry = Some(Default::default());
        assert!(state_changes(&before, &busy).is_empty());
        assert_eq!(
            state_changes(&before, &[]),
            vec!["usb-3-2: gone".to_string()]
        );
    }

    #[test]
    fn nvidia_gpus_are_addressed_at_their_cuda_ordinal_not_their_listing_rank() {
        let gpu = |id: &str, ordinal: &str| Device {
            id: id.into(),
            kind: DeviceKind::NvidiaGpu as i32,
            attributes: [(CUDA_ORDINAL.to_string(), ordinal.to_string())].into(),
            ..Default::default()
        };
        let devices = vec![
            Device {
                id: "cpu".into(),
                kind: DeviceKind::Cpu as i32,
                ..Default::default()
            },
            gpu("GPU-late-bus", "1"),
            gpu("GPU-early-bus", "0"),
        ];
        let refs = runtime_refs(&devices);
        assert_eq!(refs[0], DeviceRef::cpu());
        assert_eq!((refs[1].id.as_str(), refs[1].ordinal), ("GPU-late-bus", 1));
        assert_eq!((refs[2].id.as_str(), refs[2].ordinal), ("GPU-early-bus", 0));
        let mut sim = devices[1].clone();
        sim.simulated = true;
        assert_eq!(
            runtime_refs(&[sim])[0],
            DeviceRef::cpu(),
            "simulated runs on the CPU"
        );
    }
}
