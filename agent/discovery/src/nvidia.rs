//! NVIDIA GPUs through NVML, behind the [`NvmlSource`] trait: [`RealNvml`] (nvml-wrapper,
//! dlopens `libnvidia-ml.so.1`) and [`FixtureNvml`] (a JSON file of recorded NVML values).
//! Everything after the trait — turning records into [`Device`]s and telemetry — is shared.
//!
//! No driver (`Nvml::init()` → `LibloadingError` or `DriverNotLoaded`) means no NVIDIA
//! devices and a debug log line, never an error.

use std::path::{Path, PathBuf};

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{TemperatureSensor, TemperatureThreshold};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use serde::{Deserialize, Serialize};
use switchyard_proto::v1::{Device, DeviceHealth, DeviceKind, DeviceTelemetry};

use crate::catalog::{nvidia_by_name, tops_from};
use crate::error::DiscoveryError;

/// Live figures of one GPU, as NVML reports them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NvmlTelemetry {
    /// Free framebuffer memory, bytes.
    pub memory_free_bytes: u64,
    /// Used framebuffer memory, bytes.
    pub memory_used_bytes: u64,
    /// GPU utilisation over NVML's last sample period, percent.
    #[serde(default)]
    pub utilization_gpu_percent: Option<u32>,
    /// GPU core temperature, °C.
    #[serde(default)]
    pub temperature_celsius: Option<u32>,
    /// Board power draw, milliwatts.
    #[serde(default)]
    pub power_milliwatts: Option<u32>,
    /// The power limit the board enforces, milliwatts.
    #[serde(default)]
    pub power_limit_milliwatts: Option<u32>,
    /// The temperature at which the GPU slows down (NVML's slowdown threshold), °C.
    #[serde(default)]
    pub slowdown_celsius: Option<u32>,
    /// Compute processes on the GPU and the memory each holds.
    #[serde(default)]
    pub processes: Vec<NvmlProcess>,
}

/// One compute process on a GPU (NVML's running compute processes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NvmlProcess {
    /// Process id.
    pub pid: u32,
    /// GPU memory it holds, bytes.
    pub used_bytes: u64,
}

/// One GPU as NVML describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NvmlGpu {
    /// NVML index.
    pub index: u32,
    /// Product name (`NVIDIA GeForce RTX 4070 SUPER`).
    pub name: String,
    /// `GPU-…` UUID.
    pub uuid: String,
    /// PCI bus id (`00000000:01:00.0`).
    pub pci_bus_id: String,
    /// Total framebuffer memory, bytes.
    pub memory_total_bytes: u64,
    /// CUDA compute capability (`8.9`).
    #[serde(default)]
    pub compute_capability: Option<String>,
    /// Live figures at the time of the snapshot.
    pub telemetry: NvmlTelemetry,
}

/// Everything NVML says at one scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NvmlSnapshot {
    /// Driver version (`570.124.04`).
    pub driver_version: String,
    /// CUDA driver API version (`12.8`).
    #[serde(default)]
    pub cuda_driver_version: Option<String>,
    /// The GPUs.
    pub gpus: Vec<NvmlGpu>,
}

/// A source of NVML answers.
pub trait NvmlSource: Send {
    /// Driver version and every GPU.
    fn snapshot(&mut self) -> Result<NvmlSnapshot, DiscoveryError>;
    /// Live figures of the GPU with this UUID.
    fn telemetry(&mut self, uuid: &str) -> Result<NvmlTelemetry, DiscoveryError>;
}

/// The real NVML through nvml-wrapper.
pub struct RealNvml {
    nvml: Nvml,
}

impl std::fmt::Debug for RealNvml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RealNvml")
    }
}

fn nvml_err(call: &'static str) -> impl FnOnce(NvmlError) -> DiscoveryError {
    move |source| DiscoveryError::Nvml { call, source }
}

/// Optional NVML answers: `NotSupported` and friends become `None`.
fn opt<T>(r: Result<T, NvmlError>) -> Option<T> {
    r.ok()
}

impl RealNvml {
    /// Loads NVML. `Ok(None)` when there is no NVIDIA driver (library missing or driver not
    /// loaded): that is the normal state of a machine without NVIDIA GPUs.
    pub fn init() -> Result<Option<Self>, DiscoveryError> {
        match Nvml::init() {
            Ok(nvml) => Ok(Some(Self { nvml })),
            Err(NvmlError::LibloadingError(e)) => {
                tracing::debug!(error = %e, "NVML library not found: no NVIDIA devices");
                Ok(None)
            }
            Err(NvmlError::DriverNotLoaded) => {
                tracing::debug!("NVIDIA driver not loaded: no NVIDIA devices");
                Ok(None)
            }
            Err(NvmlError::LibraryNotFound) => {
                tracing::debug!("NVML library not found: no NVIDIA devices");
                Ok(None)
            }
            Err(e) => Err(DiscoveryError::Nvml {
                call: "nvmlInit",
                source: e,
            }),
        }
    }

    fn device_telemetry(dev: &nvml_wrapper::Device<'_>) -> Result<NvmlTelemetry, DiscoveryError> {
        let mem = dev
            .memory_info()
            .map_err(nvml_err("nvmlDeviceGetMemoryInfo"))?;
        Ok(NvmlTelemetry {
            memory_free_bytes: mem.free,
            memory_used_bytes: mem.used,
            utilization_gpu_percent: opt(dev.utilization_rates()).map(|u| u.gpu),
            temperature_celsius: opt(dev.temperature(TemperatureSensor::Gpu)),
            power_milliwatts: opt(dev.power_usage()),
            power_limit_milliwatts: opt(dev.enforced_power_limit()),
            slowdown_celsius: opt(dev.temperature_threshold(TemperatureThreshold::Slowdown)),
            processes: opt(dev.running_compute_processes())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| match p.used_gpu_memory {
                    UsedGpuMemory::Used(used_bytes) => Some(NvmlProcess {
                        pid: p.pid,
                        used_bytes,
                    }),
                    UsedGpuMemory::Unavailable => None,
                })
                .collect(),
        })
    }
}

impl NvmlSource for RealNvml {
    fn snapshot(&mut self) -> Result<NvmlSnapshot, DiscoveryError> {
        let driver_version = self
            .nvml
            .sys_driver_version()
            .map_err(nvml_err("nvmlSystemGetDriverVersion"))?;
        let cuda_driver_version = opt(self.nvml.sys_cuda_driver_version())
            .map(|v| format!("{}.{}", v / 1000, (v % 1000) / 10));
        let count = self
            .nvml
            .device_count()
            .map_err(nvml_err("nvmlDeviceGetCount"))?;
        let mut gpus = Vec::new();
        for index in 0..count {
            let dev = match self.nvml.device_by_index(index) {
                Ok(d) => d,
                Err(e) => {
                    // A GPU that fell off the bus answers GpuLost here; skip it, keep the rest.
                    tracing::warn!(index, error = %e, "NVML device unavailable");
                    continue;
                }
            };
            let mem = dev
                .memory_info()
                .map_err(nvml_err("nvmlDeviceGetMemoryInfo"))?;
            gpus.push(NvmlGpu {
                index,
                name: dev.name().map_err(nvml_err("nvmlDeviceGetName"))?,
                uuid: dev.uuid().map_err(nvml_err("nvmlDeviceGetUUID"))?,
                pci_bus_id: opt(dev.pci_info()).map(|p| p.bus_id).unwrap_or_default(),
                memory_total_bytes: mem.total,
                compute_capability: opt(dev.cuda_compute_capability())
                    .map(|c| format!("{}.{}", c.major, c.minor)),
                telemetry: Self::device_telemetry(&dev)?,
            });
        }
        Ok(NvmlSnapshot {
            driver_version,
            cuda_driver_version,
            gpus,
        })
    }

    fn telemetry(&mut self, uuid: &str) -> Result<NvmlTelemetry, DiscoveryError> {
        let dev = self
            .nvml
            .device_by_uuid(uuid)
            .map_err(nvml_err("nvmlDeviceGetHandleByUUID"))?;
        Self::device_telemetry(&dev)
    }
}

/// Recorded NVML answers from a JSON file (the [`NvmlSnapshot`] shape).
#[derive(Debug, Clone)]
pub struct FixtureNvml {
    path: PathBuf,
    snapshot: NvmlSnapshot,
}

impl FixtureNvml {
    /// Loads a recorded snapshot.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, DiscoveryError> {
        let path = path.as_ref().to_path_buf();
        let text = std::fs::read_to_string(&path).map_err(|source| DiscoveryError::FixtureIo {
            path: path.clone(),
            source,
        })?;
        let snapshot =
            serde_json::from_str(&text).map_err(|source| DiscoveryError::FixtureFormat {
                path: path.clone(),
                source,
            })?;
        Ok(Self { path, snapshot })
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl NvmlSource for FixtureNvml {
    fn snapshot(&mut self) -> Result<NvmlSnapshot, DiscoveryError> {
        Ok(self.snapshot.clone())
    }

    fn telemetry(&mut self, uuid: &str) -> Result<NvmlTelemetry, DiscoveryError> {
        self.snapshot
            .gpus
            .iter()
            .find(|g| g.uuid == uuid)
            .map(|g| g.telemetry.clone())
            .ok_or_else(|| DiscoveryError::UnknownDevice(uuid.to_string()))
    }
}

/// GPUs served at once by default on a GPU (several model instances / batches in flight).
pub const GPU_MAX_CONCURRENCY: u32 = 4;

use switchyard_proto::attributes::CUDA_ORDINAL;

/// `domain:bus:device.function` of an NVML PCI bus id (`00000000:01:00.0`, hex), for ordering.
fn pci_key(bus_id: &str) -> Option<(u32, u32, u32, u32)> {
    let (domain, rest) = bus_id.trim().split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (device, function) = rest.split_once('.')?;
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    Some((hex(domain)?, hex(bus)?, hex(device)?, hex(function)?))
}

/// The CUDA ordinal of each GPU of `gpus` (same order): its rank by PCI bus id, which is how
/// CUDA numbers devices under `CUDA_DEVICE_ORDER=PCI_BUS_ID` (the switchyard binary sets it
/// before any CUDA library loads). NVML's own index is not used: CUDA's default order is
/// fastest first, and NVML may list devices in another order. A GPU without a parsable bus
/// id sorts after the others, in listing order.
pub fn cuda_ordinals(gpus: &[NvmlGpu]) -> Vec<u32> {
    let mut order: Vec<usize> = (0..gpus.len()).collect();
    order.sort_by_key(|&i| {
        (
            pci_key(&gpus[i].pci_bus_id).is_none(),
            pci_key(&gpus[i].pci_bus_id),
            i,
        )
    });
    let mut ordinals = vec![0; gpus.len()];
    for (rank, i) in order.into_iter().enumerate() {
        ordinals[i] = rank as u32;
    }
    ordinals
}

/// Devices from an NVML snapshot (the shared path after the trait).
pub fn devices(snap: &NvmlSnapshot) -> Vec<Device> {
    let ordinals = cuda_ordinals(&snap.gpus);
    snap.gpus
        .iter()
        .zip(ordinals)
        .map(|(g, ordinal)| {
            let entry = nvidia_by_name(&g.name);
            let mut d = Device {
                id: g.uuid.clone(),
                kind: DeviceKind::NvidiaGpu as i32,
                vendor: "NVIDIA".into(),
                model: g.name.clone(),
                memory_total_bytes: g.memory_total_bytes,
                memory_free_bytes: g.telemetry.memory_free_bytes,
                tops: Some(tops_from(entry, &g.name)),
                health: DeviceHealth::Healthy as i32,
                max_concurrency: GPU_MAX_CONCURRENCY,
                telemetry: Some(telemetry_of(&g.uuid, &g.telemetry, DeviceHealth::Healthy)),
                ..Default::default()
            };
            let a = &mut d.attributes;
            a.insert("uuid".into(), g.uuid.clone());
            a.insert("nvml_index".into(), g.index.to_string());
            a.insert("pci_bus_id".into(), g.pci_bus_id.clone());
            a.insert(CUDA_ORDINAL.into(), ordinal.to_string());
            a.insert("driver_version".into(), snap.driver_version.clone());
            if let Some(c) = &snap.cuda_driver_version {
                a.insert("cuda_driver_version".into(), c.clone());
            }
            if let Some(cc) = &g.compute_capability {
                a.insert("compute_capability".into(), cc.clone());
            }
            d
        })
        .collect()
}

/// A [`DeviceTelemetry`] from NVML figures.
pub fn telemetry_of(uuid: &str, t: &NvmlTelemetry, health: DeviceHealth) -> DeviceTelemetry {
    DeviceTelemetry {
        device_id: uuid.to_string(),
        memory_free_bytes: t.memory_free_bytes,
        utilization_ratio: t.utilization_gpu_percent.map(|p| f64::from(p) / 100.0),
        temperature_celsius: t.temperature_celsius.map(f64::from),
        power_watts: t.power_milliwatts.map(|mw| f64::from(mw) / 1000.0),
        health: health as i32,
        power_limit_watts: t.power_limit_milliwatts.map(|mw| f64::from(mw) / 1000.0),
        throttle_celsius: t.slowdown_celsius.map(f64::from),
        process_memory_bytes: t.processes.iter().map(|p| (p.pid, p.used_bytes)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_fixture_is_a_precise_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nvml.json");
        std::fs::write(&p, r#"{"driver_version": "1", "gpus": [{"index": 0}]}"#).unwrap();
        let err = FixtureNvml::load(&p).unwrap_err().to_string();
        assert!(err.contains("invalid fixture"), "{err}");
        assert!(err.contains("missing field"), "{err}");
        let err = FixtureNvml::load(dir.path().join("absent.json")).unwrap_err();
        assert!(matches!(err, DiscoveryError::FixtureIo { .. }));
    }

    #[test]
    fn telemetry_units() {
        let t = NvmlTelemetry {
            memory_free_bytes: 5,
            memory_used_bytes: 1,
            utilization_gpu_percent: Some(37),
            temperature_celsius: Some(61),
            power_milliwatts: Some(215_500),
            power_limit_milliwatts: Some(450_000),
            slowdown_celsius: Some(87),
            processes: vec![NvmlProcess {
                pid: 4242,
                used_bytes: 5 << 30,
            }],
        };
        let d = telemetry_of("GPU-x", &t, DeviceHealth::Healthy);
        assert_eq!(d.process_memory_bytes.get(&4242), Some(&(5 << 30)));
        assert_eq!(d.utilization_ratio, Some(0.37));
        assert_eq!(d.temperature_celsius, Some(61.0));
        assert_eq!(d.power_watts, Some(215.5));
        assert_eq!(d.power_limit_watts, Some(450.0));
        assert_eq!(d.throttle_celsius, Some(87.0));
    }
}
