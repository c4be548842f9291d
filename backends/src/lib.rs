//! The set of backends this build and this host can use.
//!
//! [`BackendSet::from_env`] constructs every compiled-in backend whose runtime library
//! loads, and remembers why the others did not. [`BackendSet::probe`] loads a tiny model on
//! every backend × device pair and reports which pairs really run (and why not).
//! [`BackendSet::calibrate`] measures a pair's int8 throughput; [`BackendSet::load`] loads
//! a registry model through a backend chosen by id.

mod calibrate;

use std::sync::Arc;

pub use calibrate::{Calibration, calibrate as calibrate_backend};
use switchyard_backend_core::{
    Backend, BackendError, DeviceRef, DeviceTops, DeviceType, LoadedModel, ModelSpec, Precision,
};
use tracing::{debug, info};

/// Every backend id this crate knows, compiled in or not.
pub const KNOWN_BACKENDS: [&str; 4] = ["ort-cpu", "ort-cuda", "ort-tensorrt", "openvino"];

/// Outcome of probing one backend on one device.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    /// Inventory id of the device probed.
    pub device_id: String,
    /// Id of the backend probed (`ort-cpu`, `openvino`, ...).
    pub backend: String,
    /// `Ok` with the precisions a tiny model ran at; otherwise why it did not run.
    pub result: Result<Vec<Precision>, String>,
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
        #[cfg(feature = "openvino")]
        match switchyard_backend_openvino::OpenVinoBackend::new() {
            Ok(b) => set.backends.push(Arc::new(b)),
            Err(e) => set.unavailable.push((
                switchyard_backend_openvino::BACKEND_ID.to_string(),
                e.to_string(),
            )),
        }
        #[cfg(not(feature = "openvino"))]
        set.unavailable.push((
            "openvino".into(),
            "not compiled in (build with the `openvino` feature)".into(),
        ));
        #[cfg(not(feature = "ort"))]
        for id in ["ort-cpu", "ort-cuda", "ort-tensorrt"] {
            set.unavailable.push((
                id.into(),
                "not compiled in (build with the `ort` feature)".into(),
            ));
        }
        for (id, why) in &set.unavailable {
            info!(backend = %id, reason = %why, "backend unavailable");
        }
        set
    }

    /// The usable backend with id `id`; an unknown or unavailable id is an error that
    /// lists the usable ones (and why `id` is not usable, when known).
    pub fn get(&self, id: &str) -> Result<Arc<dyn Backend>, BackendError> {
        if let Some(b) = self.backends.iter().find(|b| b.id() == id) {
            return Ok(b.clone());
        }
        let usable = self.ids().join(", ");
        let reason = match self.unavailable.iter().find(|(u, _)| u == id) {
            Some((_, why)) => format!("backend {id} is unavailable here: {why}"),
            None if KNOWN_BACKENDS.contains(&id) => format!("backend {id} is not in this set"),
            None => format!(
                "unknown backend {id:?} (known backends: {})",
                KNOWN_BACKENDS.join(", ")
            ),
        };
        Err(BackendError::RuntimeUnavailable(format!(
            "{reason}; usable here: [{usable}]"
        )))
    }

    /// Loads `spec` onto `device` through backend `backend_id` (blocking: compiles the
    /// model). Wrap the result in [`switchyard_backend_core::worker::ModelWorker`].
    pub fn load(
        &self,
        spec: &ModelSpec,
        device: &DeviceRef,
        backend_id: &str,
    ) -> Result<Box<dyn LoadedModel>, BackendError> {
        self.get(backend_id)?.load(spec, device)
    }

    /// Measures `backend_id`'s int8 throughput on `device` (blocking, about a second).
    pub fn calibrate(
        &self,
        device: &DeviceRef,
        backend_id: &str,
    ) -> Result<Calibration, BackendError> {
        let backend = self.get(backend_id)?;
        calibrate::calibrate(backend.as_ref(), device)
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

    /// The first figure a backend reports for `device`'s own int8 throughput (OpenVINO's
    /// `DEVICE_GOPS` on Intel GPUs and NPUs), with the backend's id.
    pub fn device_tops(&self, device: &DeviceRef) -> Option<(&'static str, DeviceTops)> {
        self.backends
            .iter()
            .filter(|b| targets(b.id(), device.device_type))
            .find_map(|b| match b.device_tops(device) {
                Ok(Some(t)) => Some((b.id(), t)),
                Ok(None) => None,
                Err(e) => {
                    debug!(device = %device.id, backend = b.id(), error = %e, "no device TOPS");
                    None
                }
            })
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
