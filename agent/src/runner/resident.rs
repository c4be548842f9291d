//! One model resident on one device: what it holds (its worker, batcher, reservation) and how
//! its instances are loaded.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use switchyard_backend_core::worker::ModelWorker;
use switchyard_backend_core::{
    Backend, BackendError, DeviceRef, LoadedModel, ModelSpec, Precision,
};
use switchyard_proto::v1::ResidentModel;

use crate::batcher::Batcher;

/// One model resident on one device.
#[derive(Debug)]
pub(super) struct Resident {
    pub(super) spec: ModelSpec,
    pub(super) device_id: String,
    pub(super) backend: String,
    /// The precision the runtime computes this instance at (read back at load).
    pub(super) precision: Precision,
    pub(super) worker: ModelWorker,
    pub(super) batcher: Option<Batcher>,
    pub(super) last_used: Mutex<Instant>,
    /// Pinned by the controller: never evicted.
    pub(super) pinned: AtomicBool,
    /// How long the load took, ms.
    pub(super) load_ms: f64,
    /// Memory it reserves on the device: the entry's `memory_bytes` per copy of the weights
    /// (a wide instance beside the streams is a second copy).
    pub(super) memory_bytes: u64,
}

/// Memory a load of `spec` as `streams` streams reserves: streams share one copy of the
/// weights, and more than one stream brings a wide instance with a copy of its own.
pub(super) fn reservation(spec: &ModelSpec, streams: usize) -> u64 {
    let copies = if streams > 1 { 2 } else { 1 };
    spec.memory_bytes.saturating_mul(copies)
}

impl Resident {
    pub(super) fn describe(&self) -> ResidentModel {
        ResidentModel {
            model: self.spec.name.clone(),
            device_id: self.device_id.clone(),
            backend: self.backend.clone(),
            precision: self.precision.as_str().to_string(),
            load_ms: self.load_ms,
            streams: self.worker.streams() as u32,
            memory_bytes: self.memory_bytes,
            in_flight: self.worker.in_flight(),
            pinned: self.pinned.load(Ordering::Relaxed),
            idle_ms: self
                .last_used
                .lock()
                .expect("last used")
                .elapsed()
                .as_millis() as u64,
            layout: String::new(),
        }
    }
}

/// The precision the instances of `spec` loaded at: the one asked for, on every instance. A
/// backend must refuse rather than run at another precision; one that did not is never
/// served.
pub(super) fn loaded_precision(
    (loaded, wide): &Instances,
    spec: &ModelSpec,
    backend_id: &str,
    device_id: &str,
) -> Result<Precision, BackendError> {
    let model = &spec.name;
    let Some(precision) = loaded.first().map(|m| m.precision()) else {
        return Err(BackendError::Inference(format!(
            "backend {backend_id} loaded no instance of {model}"
        )));
    };
    if let Some(other) = loaded
        .iter()
        .chain(wide)
        .find(|m| m.precision() != spec.precision)
    {
        return Err(BackendError::DeviceUnsupported {
            backend: backend_id.into(),
            device: device_id.into(),
            reason: format!(
                "{model} was asked for {} but loaded at {}",
                spec.precision,
                other.precision()
            ),
        });
    }
    Ok(precision)
}

/// A model's streams and, beside them, its wide instance (if it has one).
pub(super) type Instances = (Vec<Box<dyn LoadedModel>>, Option<Box<dyn LoadedModel>>);

/// Loads `spec` on `target` as `streams` streams (blocking) and, when the backend gave more
/// than one, a wide instance with all the threads beside them: a lone request runs there
/// (see [`crate::streams`]).
pub(super) fn load_instances(
    backend: &dyn Backend,
    spec: &ModelSpec,
    target: &DeviceRef,
    streams: usize,
) -> Result<Instances, BackendError> {
    let loaded = backend.load_streams(spec, target, streams)?;
    let wide = match loaded.len() {
        0 | 1 => None,
        _ => Some(backend.load(spec, target)?),
    };
    Ok((loaded, wide))
}
