//! The stage runner: owns every loaded model on this node (one worker thread per
//! model × device, with a batcher in front for classify/embed) and runs stages on them.
//!
//! Devices that exist only in a fixture inventory (`simulated`) execute on the CPU; their
//! traces say `simulated = true`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use switchyard_backend_core::paths;
use switchyard_backend_core::worker::ModelWorker;
use switchyard_backend_core::{
    Backend, BackendError, ClassScores, DeviceRef, GenerateParams, ModelRegistry, ModelSpec,
    StageKind, TokenEvent,
};
use switchyard_proto::v1::{Device, ResidentModel};
use tracing::{Instrument, info, info_span};

use crate::batcher::{BatchOutput, Batcher};
use crate::engines::LlamaCpp;

mod engines;
mod outcome;
mod resident;
use crate::eviction::{EvictionCandidate, plan_eviction};
use crate::streams;
pub use outcome::{GenerateOutcome, StageResult};
use resident::{Resident, reservation};

/// A device as the runner addresses it.
#[derive(Debug, Clone)]
struct DeviceSlot {
    /// Where the runtime actually executes (the CPU for simulated devices).
    target: DeviceRef,
    simulated: bool,
    memory_total_bytes: u64,
    /// What each backend computes at on this device (its probe).
    precisions: HashMap<String, Vec<switchyard_backend_core::Precision>>,
}

/// Runs stages on this node's devices.
pub struct StageRunner {
    node_name: String,
    /// The registry this agent was started with; the cluster's added models join it.
    base: ModelRegistry,
    /// `base` plus the controller's added models ([`Self::set_cluster_models`]).
    registry: std::sync::RwLock<Arc<ModelRegistry>>,
    backends: BTreeMap<String, Arc<dyn Backend>>,
    devices: Mutex<HashMap<String, DeviceSlot>>,
    resident: Mutex<HashMap<(String, String), Arc<Resident>>>,
    /// One lock per device: loads on a device run one at a time (so a model is never loaded
    /// twice, and making room never races another load's reservation there); loads on
    /// different devices run side by side.
    load_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    queue_capacity: usize,
    /// Engine models (`engine = { … }` entries) run as supervised processes here.
    llama_cpp: std::sync::OnceLock<Arc<LlamaCpp>>,
}

impl std::fmt::Debug for StageRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageRunner")
            .field("node", &self.node_name)
            .field("backends", &self.backends.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl StageRunner {
    /// A runner for `node_name` with the given backends and model registry.
    pub fn new(
        node_name: impl Into<String>,
        registry: ModelRegistry,
        backends: Vec<Arc<dyn Backend>>,
        queue_capacity: usize,
    ) -> Self {
        StageRunner {
            node_name: node_name.into(),
            registry: std::sync::RwLock::new(Arc::new(registry.clone())),
            base: registry,
            backends: backends
                .into_iter()
                .map(|b| (b.id().to_string(), b))
                .collect(),
            devices: Mutex::new(HashMap::new()),
            resident: Mutex::new(HashMap::new()),
            load_locks: Mutex::new(HashMap::new()),
            queue_capacity,
            llama_cpp: std::sync::OnceLock::new(),
        }
    }

    /// The node this runner belongs to.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// Ids of the backends compiled in and loadable.
    pub fn backend_ids(&self) -> Vec<String> {
        self.backends.keys().cloned().collect()
    }

    /// The model registry now: the agent's own plus the cluster's added models.
    pub fn registry(&self) -> Arc<ModelRegistry> {
        self.registry.read().expect("registry").clone()
    }

    /// Replaces the device table from a fresh inventory (runtime addresses from
    /// [`crate::inventory::runtime_refs`]).
    pub fn set_devices(&self, devices: &[Device]) {
        let table = devices
            .iter()
            .zip(crate::inventory::runtime_refs(devices))
            .map(|(d, target)| {
                (
                    d.id.clone(),
                    DeviceSlot {
                        target,
                        simulated: d.simulated,
                        memory_total_bytes: d.memory_total_bytes,
                        precisions: d
                            .backends
                            .iter()
                            .map(|b| {
                                let at = b.precisions.iter().filter_map(|p| p.parse().ok());
                                (b.backend.clone(), at.collect())
                            })
                            .collect(),
                    },
                )
            })
            .collect();
        *self.devices.lock().expect("device table") = table;
    }

    /// Models resident on this node.
    pub fn resident_models(&self) -> Vec<ResidentModel> {
        let resident = self.resident.lock().expect("resident table");
        let mut out: Vec<ResidentModel> = resident.values().map(|r| r.describe()).collect();
        out.extend(
            self.llama_cpp
                .get()
                .map(|l| l.resident())
                .unwrap_or_default(),
        );
        out.sort_by(|a, b| (&a.model, &a.device_id).cmp(&(&b.model, &b.device_id)));
        out
    }

    /// Bytes reserved on each device by its resident models.
    pub fn reserved_bytes(&self) -> HashMap<String, u64> {
        let mut out = HashMap::new();
        for r in self.resident.lock().expect("resident table").values() {
            *out.entry(r.device_id.clone()).or_default() += r.memory_bytes;
        }
        for (device, bytes) in self
            .llama_cpp
            .get()
            .map(|l| l.reserved_bytes())
            .unwrap_or_default()
        {
            *out.entry(device).or_default() += bytes;
        }
        out
    }

    fn spec(&self, model: &str) -> Result<ModelSpec, BackendError> {
        let registry = self.registry();
        registry.get(model).cloned().ok_or_else(|| {
            BackendError::InvalidInput(format!(
                "unknown model '{model}' (registered: {})",
                registry
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    fn slot(&self, device_id: &str) -> Result<DeviceSlot, BackendError> {
        let devices = self.devices.lock().expect("device table");
        devices.get(device_id).cloned().ok_or_else(|| {
            let mut known: Vec<&String> = devices.keys().collect();
            known.sort();
            BackendError::DeviceUnsupported {
                backend: "-".into(),
                device: device_id.into(),
                reason: format!(
                    "no such device on node {} (devices: {known:?})",
                    self.node_name
                ),
            }
        })
    }

    fn backend(&self, id: &str) -> Result<Arc<dyn Backend>, BackendError> {
        self.backends.get(id).cloned().ok_or_else(|| {
            BackendError::InvalidInput(format!(
                "unknown or unavailable backend '{id}' on node {} (available: {})",
                self.node_name,
                self.backends.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// Loads `model` on `device_id` with `backend` (no-op when already resident there);
    /// `pin` keeps it from being evicted (and pins it when already resident). When the
    /// device's memory would be overcommitted, idle unpinned models on it are evicted, least
    /// recently used first; when that is not enough the load is refused.
    pub async fn load(
        &self,
        model: &str,
        device_id: &str,
        backend: &str,
        pin: bool,
    ) -> Result<ResidentModel, BackendError> {
        if let Some((llama_cpp, spec)) = self.engine_model(model) {
            self.slot(device_id)?;
            return llama_cpp.load(&spec, device_id, pin).await;
        }
        let (r, _) = self.resident_or_load(model, device_id, backend).await?;
        if pin && !r.pinned.swap(true, Ordering::Relaxed) {
            info!(model, device = device_id, "model pinned");
        }
        Ok(r.describe())
    }

    /// Unloads `model` from `device_id` (an engine's process is gone when this returns).
    /// Returns false when it was not resident.
    pub async fn unload(&self, model: &str, device_id: &str) -> bool {
        if let Some((llama_cpp, _)) = self.engine_model(model) {
            return llama_cpp.unload(model, device_id).await;
        }
        let removed = self
            .resident
            .lock()
            .expect("resident table")
            .remove(&(model.to_string(), device_id.to_string()));
        if removed.is_some() {
            info!(model, device = device_id, "model unloaded");
        }
        removed.is_some()
    }

    fn lookup(&self, model: &str, device_id: &str) -> Option<Arc<Resident>> {
        self.resident
            .lock()
            .expect("resident table")
            .get(&(model.to_string(), device_id.to_string()))
            .cloned()
    }

    /// The resident model, loaded first when it is not; with the milliseconds this call
    /// spent loading it (waiting for another call's load included).
    async fn resident_or_load(
        &self,
        model: &str,
        device_id: &str,
        backend_id: &str,
    ) -> Result<(Arc<Resident>, f64), BackendError> {
        if let Some(r) = self.lookup(model, device_id)
            && (backend_id.is_empty() || r.backend == backend_id)
        {
            *r.last_used.lock().expect("last used") = Instant::now();
            return Ok((r, 0.0));
        }
        let waited = Instant::now();
        let lock = self.device_load_lock(device_id);
        let _guard = lock.lock().await;
        if let Some(r) = self.lookup(model, device_id)
            && (backend_id.is_empty() || r.backend == backend_id)
        {
            return Ok((r, waited.elapsed().as_secs_f64() * 1e3));
        }
        let resident = self.load_resident(model, device_id, backend_id).await?;
        Ok((resident, waited.elapsed().as_secs_f64() * 1e3))
    }

    /// The load lock of `device_id`.
    fn device_load_lock(&self, device_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.load_locks
            .lock()
            .expect("load locks")
            .entry(device_id.to_string())
            .or_default()
            .clone()
    }

    /// Loads `model` on `device_id` with `backend_id` (room made first) and makes it
    /// resident. Called under the device's load lock.
    async fn load_resident(
        &self,
        model: &str,
        device_id: &str,
        backend_id: &str,
    ) -> Result<Arc<Resident>, BackendError> {
        let mut spec = self.spec(model)?;
        let slot = self.slot(device_id)?;
        // The precision this device's backend computes the model at (an NPU: f16 when the
        // entry allows it, `also_at`).
        spec.precision = spec.precision_on(
            slot.precisions
                .get(backend_id)
                .map(Vec::as_slice)
                .unwrap_or_default(),
        );
        if backend_id.is_empty() {
            return Err(BackendError::InvalidInput(format!(
                "model {model} is not loaded on {device_id} and no backend was named"
            )));
        }
        let backend = self.backend(backend_id)?;
        let streams = streams::plan(&spec, slot.target.device_type, paths::inference_threads())
            .min(backend.max_streams(&spec, &slot.target));
        self.make_room(
            &spec,
            reservation(&spec, streams),
            device_id,
            slot.memory_total_bytes,
        )?;
        let span = info_span!("load", model, device = device_id, backend = backend_id);
        let started = Instant::now();
        let target = slot.target.clone();
        let load_spec = spec.clone();
        let instances = tokio::task::spawn_blocking(move || {
            resident::load_instances(backend.as_ref(), &load_spec, &target, streams)
        })
        .instrument(span.clone())
        .await
        .map_err(|e| BackendError::Inference(format!("load task failed: {e}")))??;
        let precision = resident::loaded_precision(&instances, &spec, backend_id, device_id)?;
        let (loaded, wide) = instances;
        let worker = ModelWorker::spawn_lanes(loaded, wide, self.queue_capacity);
        let reserved = reservation(&spec, worker.streams());
        let batcher = match spec.stage {
            StageKind::Classify | StageKind::Embed => {
                Some(Batcher::spawn(worker.clone(), self.queue_capacity))
            }
            StageKind::Generate => None,
        };
        let resident = Arc::new(Resident {
            spec,
            device_id: device_id.to_string(),
            backend: backend_id.to_string(),
            precision,
            worker,
            batcher,
            last_used: Mutex::new(Instant::now()),
            pinned: AtomicBool::new(false),
            load_ms: started.elapsed().as_secs_f64() * 1e3,
            memory_bytes: reserved,
        });
        self.resident
            .lock()
            .expect("resident table")
            .insert((model.to_string(), device_id.to_string()), resident.clone());
        span.in_scope(|| {
            info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                simulated = slot.simulated,
                precision = %precision,
                streams = resident.worker.streams(),
                wide = resident.worker.has_wide(),
                "model loaded"
            )
        });
        Ok(resident)
    }

    /// Evicts idle models from `device_id` (least recently used first) until `spec` fits in
    /// its `total` bytes, or refuses without evicting anything. Called under the device's load
    /// lock.
    fn make_room(
        &self,
        spec: &ModelSpec,
        needed: u64,
        device_id: &str,
        total: u64,
    ) -> Result<(), BackendError> {
        let mut resident = self.resident.lock().expect("resident table");
        let candidates: Vec<EvictionCandidate> = resident
            .values()
            .filter(|r| r.device_id == device_id && r.spec.name != spec.name)
            .map(|r| EvictionCandidate {
                model: r.spec.name.clone(),
                memory_bytes: r.memory_bytes,
                last_used: *r.last_used.lock().expect("last used"),
                in_flight: r.worker.in_flight(),
                pinned: r.pinned.load(Ordering::Relaxed),
            })
            .collect();
        let evict = plan_eviction(&candidates, needed, total)
            .map_err(|e| BackendError::OutOfMemory(format!("{} on {device_id}: {e}", spec.name)))?;
        for victim in evict {
            resident.remove(&(victim.clone(), device_id.to_string()));
            info!(
                model = %victim,
                device = device_id,
                for_model = %spec.name,
                "evicted least recently used model to make room"
            );
        }
        Ok(())
    }

    /// Runs a classify or embed stage (merged with concurrent requests by the batcher).
    pub async fn run_batch(
        &self,
        stage: StageKind,
        model: &str,
        device_id: &str,
        backend: &str,
        inputs: Vec<String>,
    ) -> Result<StageResult, BackendError> {
        let (resident, load_ms) = self.resident_or_load(model, device_id, backend).await?;
        if resident.spec.stage != stage {
            return Err(BackendError::WrongStage {
                model: model.into(),
                stage: resident.spec.stage,
                requested: stage,
            });
        }
        let batcher = resident
            .batcher
            .as_ref()
            .ok_or_else(|| BackendError::WrongStage {
                model: model.into(),
                stage: resident.spec.stage,
                requested: stage,
            })?;
        let simulated = self.slot(device_id)?.simulated;
        let reply = batcher.submit(inputs).await?;
        *resident.last_used.lock().expect("last used") = Instant::now();
        Ok(StageResult {
            reply,
            backend: resident.backend.clone(),
            precision: resident.precision,
            simulated,
            load_ms,
        })
    }

    /// Classify helper returning scores.
    pub async fn classify(
        &self,
        model: &str,
        device_id: &str,
        backend: &str,
        inputs: Vec<String>,
    ) -> Result<(Vec<ClassScores>, StageResult), BackendError> {
        let res = self
            .run_batch(StageKind::Classify, model, device_id, backend, inputs)
            .await?;
        match &res.reply.output {
            BatchOutput::Classify(c) => Ok((c.clone(), res)),
            BatchOutput::Embed { .. } => Err(BackendError::Inference(
                "batcher returned embeddings".into(),
            )),
        }
    }

    /// Generates with `model` on `device_id`, calling `on_token` for each piece (on the
    /// model's thread); returning false from it cancels.
    pub async fn generate(
        &self,
        model: &str,
        device_id: &str,
        backend: &str,
        params: GenerateParams,
        on_token: impl FnMut(TokenEvent) -> bool + Send + 'static,
    ) -> Result<GenerateOutcome, BackendError> {
        let (resident, load_ms) = self.resident_or_load(model, device_id, backend).await?;
        if resident.spec.stage != StageKind::Generate {
            return Err(BackendError::WrongStage {
                model: model.into(),
                stage: resident.spec.stage,
                requested: StageKind::Generate,
            });
        }
        let simulated = self.slot(device_id)?.simulated;
        let timed = resident.worker.generate(params, on_token).await?;
        *resident.last_used.lock().expect("last used") = Instant::now();
        Ok(GenerateOutcome {
            summary: timed.value,
            backend: resident.backend.clone(),
            precision: resident.precision,
            simulated,
            queue_ms: timed.queue_ms,
            compute_ms: timed.compute_ms,
            load_ms,
        })
    }
}
