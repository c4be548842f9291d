//! The memory an engine process really holds on its device: on the CPU its resident set
//! (`/proc/<pid>/status`), on an NVIDIA GPU what NVML reports for the process (its compute
//! processes' used memory, sent up with each device's telemetry); the GGUF estimate until
//! either is known.

use std::collections::HashMap;
use std::sync::Mutex;

use switchyard_proto::v1::{DeviceKind, DeviceTelemetry};

/// The resident set of process `pid`, from `/proc/<pid>/status`.
pub(super) fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// GPU memory per (device id, pid), from the last telemetry.
#[derive(Debug, Default)]
pub(super) struct GpuProcesses(Mutex<HashMap<String, HashMap<u32, u64>>>);

impl GpuProcesses {
    /// Replaces the table with what `telemetry` reports.
    pub(super) fn update(&self, telemetry: &[DeviceTelemetry]) {
        let table = telemetry
            .iter()
            .filter(|t| !t.process_memory_bytes.is_empty())
            .map(|t| (t.device_id.clone(), t.process_memory_bytes.clone()))
            .collect();
        *self.0.lock().expect("gpu processes") = table;
    }

    /// What `pid` holds on `device_id`, when NVML said.
    pub(super) fn of(&self, device_id: &str, pid: u32) -> Option<u64> {
        self.0
            .lock()
            .expect("gpu processes")
            .get(device_id)?
            .get(&pid)
            .copied()
    }
}

/// The memory an engine of `pid` holds on a device of `kind` (see the module docs).
pub(super) fn engine_memory(
    kind: Option<DeviceKind>,
    rss: Option<u64>,
    gpu: Option<u64>,
    estimate: u64,
) -> u64 {
    match kind {
        Some(DeviceKind::Cpu) | None => rss.unwrap_or(estimate),
        Some(_) => gpu.unwrap_or(estimate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_from_proc() {
        let rss = rss_bytes(std::process::id()).unwrap();
        assert!(rss > 0);
        assert!(rss_bytes(u32::MAX).is_none());
    }

    #[test]
    fn a_gpu_engine_counts_what_nvml_says_it_holds_there_not_its_host_memory_recorded_fixture() {
        let gpus = GpuProcesses::default();
        gpus.update(&[DeviceTelemetry {
            device_id: "GPU-8f6c1a2b".into(),
            process_memory_bytes: [(4242, 5 << 30), (7, 1 << 20)].into(),
            ..Default::default()
        }]);
        let on_gpu = gpus.of("GPU-8f6c1a2b", 4242);
        assert_eq!(on_gpu, Some(5 << 30));
        assert_eq!(gpus.of("GPU-other", 4242), None);
        let nvidia = Some(DeviceKind::NvidiaGpu);
        assert_eq!(
            engine_memory(nvidia, Some(300 << 20), on_gpu, 4 << 30),
            5 << 30
        );
        assert_eq!(
            engine_memory(nvidia, Some(300 << 20), None, 4 << 30),
            4 << 30,
            "no NVML figure yet: the estimate, never the host RSS"
        );
        let cpu = Some(DeviceKind::Cpu);
        assert_eq!(
            engine_memory(cpu, Some(300 << 20), on_gpu, 4 << 30),
            300 << 20
        );
        assert_eq!(engine_memory(cpu, None, None, 4 << 30), 4 << 30);
    }
}
