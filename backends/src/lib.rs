//! The set of backends this build and this host can use.
//!
//! [`BackendSet::from_env`] constructs every compiled-in backend whose runtime library
//! loads, and remembers why the others did not. [`BackendSet::probe`] loads a tiny model on
//! every backend × device pair and reports which pairs really run (and why not).

use std::sync::Arc;

use switchyard_backend_core::{Backend, DeviceRef, DeviceType};
use tracing::{debug, info};

/// Outcome of probing one backend on one device.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    pub device_id: String,
    pub backend: String,
    /// `Ok` when a tiny model ran; otherwise why not.
    pub result: Result<(), String>,
}

/// Backends available to this process.
#[derive(Clone, Default)]
pub struct BackendSet {
    backends: Vec<Arc<dyn Backend>>,
    /// Backends compiled in whose runtime is missing: (id, reason).
    pub unavailable: Vec<(String, String)>,
}

impl std::fmt::Debug for BackendSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendSet")
            .field("backends", &self.ids())
            .field("unavailable", &self.unavailable)
            .finish()
    }
}

/// Which device families a backend id can target at all.
pub fn targets(backend: &str, kind: DeviceType) -> bool {
    match backend {
        "ort-cpu" => kind == DeviceType::Cpu,
        "ort-cuda" | "ort-tensorrt" => kind == DeviceType::NvidiaGpu,
        "openvino" => matches!(
            kind,
            DeviceType::Cpu | DeviceType::IntelGpu | DeviceType::IntelNpu | DeviceType::Ncs2
        ),
        _ => false,
    }
}

impl BackendSet {
    /// Every compiled-in backend whose runtime loads here.
    pub fn from_env() -> Self {
        let mut set = BackendSet::default();
        #[cfg(feature = "ort")]
        {
            use switchyard_backend_ort::{OrtBackend, Provider};
            for p in [Provider::Cpu, Provider::Cuda, Provider::TensorRt] {
                match OrtBackend::new(p) {
                    Ok(b) => set.backends.push(Arc::new(b)),
                    Err(e) => set.unavailable.push((p.id().to_string(), e.to_string())),
                }
            }
        }
        for (id, why) in &set.unavailable {
            info!(backend = %id, reason = %why, "backend unavailable");
        }
        set
    }

    /// Adds a backend (e.g. one constructed by the caller).
    pub fn push(&mut self, backend: Arc<dyn Backend>) {
        self.backends.push(backend);
    }

    /// The usable backends.
    pub fn backends(&self) -> Vec<Arc<dyn Backend>> {
        self.backends.clone()
    }

    /// Their ids.
    pub fn ids(&self) -> Vec<&'static str> {
        self.backends.iter().map(|b| b.id()).collect()
    }

    /// Runs the probe model on every applicable backend × device pair.
    pub fn probe(&self, devices: &[DeviceRef]) -> Vec<ProbeResult> {
        let mut out = Vec::new();
        for d in devices {
            for b in &self.backends {
                if !targets(b.id(), d.device_type) {
                    continue;
                }
                let result = b.probe(d).map_err(|e| e.to_string());
                debug!(device = %d.id, backend = b.id(), ok = result.is_ok(), "probe");
                out.push(ProbeResult {
                    device_id: d.id.clone(),
                    backend: b.id().to_string(),
                    result,
                });
            }
            for (id, why) in &self.unavailable {
                if targets(id, d.device_type) {
                    out.push(ProbeResult {
                        device_id: d.id.clone(),
                        backend: id.clone(),
                        result: Err(why.clone()),
                    });
                }
            }
        }
        out
    }
}
