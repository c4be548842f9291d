//! Telemetry refresh for CPU and Intel devices (NVIDIA comes straight from NVML). Counters
//! that need a delta (CPU jiffies, RAPL energy, hwmon energy, NPU busy time) keep their
//! previous sample here; the first call after a scan has no delta and reports `None`.

use std::collections::HashMap;
use std::time::Instant;

use switchyard_proto::v1::{Device, DeviceTelemetry};

use crate::cpu;
use crate::fsutil::Root;
use crate::intel_sysfs::{self, IntelPci};
use crate::level_zero::ZeTelemetry;

/// Previous counter samples.
#[derive(Debug, Default)]
pub(crate) struct Samples {
    cpu_jiffies: Option<(u64, u64)>,
    energy: HashMap<String, (Instant, u64)>,
    busy: HashMap<String, (Instant, u64)>,
}

/// Ratio of two deltas, `None` when the time delta is zero or counters went backwards.
fn rate(prev: Option<(Instant, u64)>, now: Instant, value: u64, per_second: f64) -> Option<f64> {
    let (t0, v0) = prev?;
    let dt = now.duration_since(t0).as_secs_f64();
    if dt <= 0.0 || value < v0 {
        return None;
    }
    Some((value - v0) as f64 / dt / per_second)
}

/// CPU: free memory from `/proc/meminfo`, utilisation from `/proc/stat`, temperature from
/// hwmon/thermal, power from RAPL.
pub(crate) fn cpu(root: &Root, s: &mut Samples, t: &mut DeviceTelemetry) {
    if let Some((_, avail)) = cpu::meminfo(root) {
        t.memory_free_bytes = avail;
    }
    if let Some((busy, total)) = cpu::stat_sample(root) {
        if let Some((b0, t0)) = s.cpu_jiffies
            && total > t0
            && busy >= b0
        {
            t.utilization_ratio = Some(((busy - b0) as f64 / (total - t0) as f64).clamp(0.0, 1.0));
        }
        s.cpu_jiffies = Some((busy, total));
    }
    t.temperature_celsius = cpu::temperature(root);
    if let Some(uj) = cpu::rapl_energy_uj(root) {
        let now = Instant::now();
        t.power_watts = rate(s.energy.get("cpu").copied(), now, uj, 1e6);
        s.energy.insert("cpu".into(), (now, uj));
    }
}

/// Intel GPU/NPU: Level Zero Sysman first, sysfs hwmon/intel_vpu counters for the rest.
pub(crate) fn intel(
    root: &Root,
    s: &mut Samples,
    d: &Device,
    pci: Option<&IntelPci>,
    zt: ZeTelemetry,
    t: &mut DeviceTelemetry,
) {
    let shared = d
        .attributes
        .get("memory_source")
        .is_some_and(|m| m.starts_with("shared"));
    let c = pci.map(intel_sysfs::counters).unwrap_or_default();
    let now = Instant::now();
    t.memory_free_bytes = if shared {
        cpu::meminfo(root)
            .map(|m| m.1)
            .unwrap_or(d.memory_free_bytes)
    } else if let Some(free) = zt.memory_free_bytes {
        free
    } else if let Some(used) = c.memory_used_bytes {
        d.memory_total_bytes.saturating_sub(used)
    } else {
        d.memory_free_bytes
    };
    t.utilization_ratio = zt.utilization_ratio.or_else(|| {
        let busy = c.busy_us?;
        let r = rate(s.busy.get(&d.id).copied(), now, busy, 1e6);
        s.busy.insert(d.id.clone(), (now, busy));
        r.map(|v| v.clamp(0.0, 1.0))
    });
    t.temperature_celsius = c.temperature_celsius;
    t.power_watts = c.power_watts.or_else(|| {
        let e = c.energy_uj?;
        let r = rate(s.energy.get(&d.id).copied(), now, e, 1e6);
        s.energy.insert(d.id.clone(), (now, e));
        r
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rate_needs_a_previous_sample_and_monotonic_counter() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(rate(None, t1, 10, 1.0), None);
        assert_eq!(rate(Some((t0, 0)), t1, 20_000_000, 1e6), Some(10.0));
        assert_eq!(rate(Some((t0, 50)), t1, 10, 1.0), None);
    }
}
