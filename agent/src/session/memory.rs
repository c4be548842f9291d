//! Free memory as the agent reports it to placement (capped by its own reservations).

use switchyard_proto::v1::{Device, DeviceTelemetry};

/// Free memory as placement should see it: what the device reports, but never more than its
/// total minus what resident models reserve (a simulated device's or a CPU's figure does not
/// drop when a model loads; the agent's own memory check counts reservations).
pub(super) fn cap_free_by_reservations(
    telemetry: &mut [DeviceTelemetry],
    devices: &[Device],
    reserved: &std::collections::HashMap<String, u64>,
) {
    for t in telemetry {
        let Some(total) = devices
            .iter()
            .find(|d| d.id == t.device_id)
            .map(|d| d.memory_total_bytes)
        else {
            continue;
        };
        let held = reserved.get(&t.device_id).copied().unwrap_or(0);
        t.memory_free_bytes = capped_free(t.memory_free_bytes, total, held);
    }
}

/// `free`, but at most `total - held` (`total == 0`: size unknown, `free` as reported).
pub(super) fn capped_free(free: u64, total: u64, held: u64) -> u64 {
    if total == 0 {
        free
    } else {
        free.min(total.saturating_sub(held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_memory_never_exceeds_what_reservations_leave() {
        // A simulated 1 GiB device reports 1 GiB free whatever is loaded: 750 MiB held → 274.
        assert_eq!(capped_free(1 << 30, 1 << 30, 750 << 20), 274 << 20);
        // A real GPU already reports less than total − reserved: its figure stands.
        assert_eq!(capped_free(100 << 20, 1 << 30, 750 << 20), 100 << 20);
        // Unknown size: as reported; over-reserved: zero, not an underflow.
        assert_eq!(capped_free(5, 0, 10), 5);
        assert_eq!(capped_free(1 << 30, 1 << 30, 2 << 30), 0);
        let devices = vec![Device {
            id: "gpu0".into(),
            memory_total_bytes: 1 << 30,
            ..Default::default()
        }];
        let mut telemetry = vec![
            DeviceTelemetry {
                device_id: "gpu0".into(),
                memory_free_bytes: 1 << 30,
                ..Default::default()
            },
            DeviceTelemetry {
                device_id: "gone".into(),
                memory_free_bytes: 7,
                ..Default::default()
            },
        ];
        let reserved = [("gpu0".to_string(), 1u64 << 29)].into_iter().collect();
        cap_free_by_reservations(&mut telemetry, &devices, &reserved);
        assert_eq!(telemetry[0].memory_free_bytes, 1 << 29);
        assert_eq!(telemetry[1].memory_free_bytes, 7);
    }
}
