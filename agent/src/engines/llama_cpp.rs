//! Engines the agent supervises: one llama.cpp `llama-server` process per (model, device),
//! for registry entries with `engine = { kind = "llama_cpp", gguf = "…" }`.
//!
//! The process is bound to 127.0.0.1 on a free port with `--jinja --parallel N --ctx-size
//! ctx×N -t threads` (each slot gets the entry's `context_tokens`); the model counts as resident
//! once `/health` answers, with the process RSS as its memory. A crash marks it unhealthy (not
//! resident) and it is restarted with the project's backoff; an engine never takes the agent
//! down. Unload: SIGTERM, SIGKILL after [`GRACE`], and the model leaves the resident list only
//! once the process is gone. Generation streams go through the OpenAI proxy of attached
//! endpoints ([`super::openai`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use switchyard_backend_core::{BackendError, ModelSpec};
use switchyard_backoff::{Backoff, Jitter};
use switchyard_proto::v1::{BackendSupport, Device, DeviceKind, ResidentModel};
use tokio::sync::watch;
use tracing::{Instrument, info_span};

use super::{Endpoint, EndpointConfig, EngineKind};

mod memory;
mod pinning;
mod process;
use memory::{GpuProcesses, engine_memory, rss_bytes};
pub use pinning::{BuildDevices, Pin};
use process::{free_port, supervise};

/// Time a stopped engine gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);
/// Longest wait for a started engine's `/health`.
pub const START_TIMEOUT: Duration = Duration::from_secs(120);
/// Restart delays after a crash.
pub const RESTART: Backoff = Backoff {
    base: Duration::from_millis(200),
    max: Duration::from_secs(10),
    jitter: Jitter::Equal,
};

/// `[engines.llama_cpp]`: where `llama-server` is and how many threads it gets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlamaCppSettings {
    /// Path of `llama-server`; default: `llama-server` on PATH, else the one
    /// `scripts/setup.sh` builds into the cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<PathBuf>,
    /// CPU threads (`-t`); default: `SWITCHYARD_THREADS` or every core.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
}

/// The `llama-server` to run: the configured one, else on PATH, else the cached build; the
/// error says how to get one.
pub fn locate(settings: &LlamaCppSettings) -> Result<PathBuf, String> {
    if let Some(p) = &settings.server {
        return if p.is_file() {
            Ok(p.clone())
        } else {
            Err(format!(
                "[engines.llama_cpp] server = {:?} is not a file",
                p.display()
            ))
        };
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("llama-server"))
        .find(|p| p.is_file());
    if let Some(p) = on_path {
        return Ok(p);
    }
    let engines = switchyard_backend_core::paths::cache_dir().join("engines");
    let mut built: Vec<PathBuf> = std::fs::read_dir(&engines)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("llama-server"))
        .filter(|p| p.is_file())
        .collect();
    built.sort();
    built.pop().ok_or_else(|| {
        format!(
            "no llama-server: set [engines.llama_cpp] server = \"/path/to/llama-server\", put llama-server on PATH, or run scripts/setup.sh (it builds a CPU llama-server into {})",
            engines.display()
        )
    })
}

/// Adds the `llama_cpp` backend to this node's CPU and GPU devices when there are engine
/// models: usable where a `llama-server` was found, its build has a backend for the device
/// and the engine itself shows that device under the pin (see [`pinning`]); otherwise with
/// why not and how to fix it. A device is checked once per identity (the check runs the
/// engine's `--list-devices`).
pub fn advertise(runner: &crate::StageRunner, devices: &mut [Device]) {
    let Some(llama_cpp) = runner.llama_cpp() else {
        return;
    };
    if !runner.registry().iter().any(|s| s.engine.is_some()) {
        return;
    }
    llama_cpp.advertise_on(devices);
}

impl LlamaCpp {
    /// Adds (or renews) the `llama_cpp` backend of every device an engine may run on: usable
    /// with the build and the pin, or why not (`switchyard devices` shows both).
    pub fn advertise_on(&self, devices: &mut [Device]) {
        let engine_kinds = [
            DeviceKind::Cpu,
            DeviceKind::NvidiaGpu,
            DeviceKind::IntelGpu,
            DeviceKind::VulkanGpu,
            DeviceKind::IntelNpu,
        ];
        for d in devices
            .iter_mut()
            .filter(|d| d.engine.is_empty() && engine_kinds.contains(&d.kind()))
        {
            let usable = self.pin_of(d);
            self.free
                .lock()
                .expect("free memory")
                .insert(d.id.clone(), d.memory_free_bytes);
            d.backends.retain(|b| b.backend != "llama_cpp");
            d.backends.push(BackendSupport {
                backend: "llama_cpp".into(),
                usable: usable.is_ok(),
                engine_build: match &usable {
                    Ok(pin) => format!("{}, on {}", self.build.name(), pin.describe()),
                    Err(_) => String::new(),
                },
                reason: usable.err().unwrap_or_default(),
                // llama.cpp computes at the precisions of the GGUF; nothing else is promised.
                precisions: Vec::new(),
            });
        }
    }
}

/// A device's pin, checked against the engine, and the identity it was checked for.
#[derive(Debug, Clone)]
struct DevicePin {
    kind: DeviceKind,
    identity: String,
    pin: Result<Pin, String>,
}

/// What a pin depends on: the kind and the identity attributes discovery wrote.
fn identity_of(d: &Device) -> String {
    use switchyard_proto::attributes::{PCI_BUS_ID, UUID, VULKAN_INDEX, VULKAN_NAME};
    let a = |k: &str| d.attributes.get(k).cloned().unwrap_or_default();
    format!(
        "{:?}|{}|{}|{}|{}",
        d.kind(),
        a(UUID),
        a(PCI_BUS_ID),
        a(VULKAN_INDEX),
        a(VULKAN_NAME)
    )
}

/// What one engine process is doing.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Starting,
    Healthy {
        pid: u32,
        /// From start to the first healthy `/health`, ms.
        load_ms: f64,
    },
    /// Crashed or failed to start; restarting after a delay.
    Down(String),
    /// Cannot run here (kept failing to start, or computed elsewhere than pinned): not
    /// restarted; its memory is not reserved.
    Failed(String),
    Stopped,
}

/// One supervised `llama-server` for one (model, device).
#[derive(Debug)]
pub(super) struct Server {
    spec: ModelSpec,
    device_id: String,
    endpoint: Endpoint,
    /// The device it is pinned to.
    pin: Pin,
    /// What it holds on that device: the model's estimate, or a partial offload's share.
    device_bytes: u64,
    phase: watch::Sender<Phase>,
    stop: watch::Sender<bool>,
    last_used: Mutex<Instant>,
    pinned: std::sync::atomic::AtomicBool,
    in_flight: std::sync::atomic::AtomicU32,
}

/// Every supervised engine of this agent.
#[derive(Debug)]
pub struct LlamaCpp {
    server: Result<PathBuf, String>,
    /// The GPU backends of that build.
    build: BuildDevices,
    /// Each device id's pin (from [`advertise`]).
    pins: Mutex<HashMap<String, DevicePin>>,
    /// Each device's free memory as last advertised (what a partial offload is planned in).
    free: Mutex<HashMap<String, u64>>,
    threads: usize,
    servers: Mutex<HashMap<(String, String), Arc<Server>>>,
    /// What NVML last said each GPU process holds.
    gpu_processes: GpuProcesses,
}

impl LlamaCpp {
    /// The supervisor, with the `llama-server` it found (or why there is none).
    pub fn new(settings: &LlamaCppSettings) -> Self {
        let server = locate(settings);
        LlamaCpp {
            build: server
                .as_deref()
                .map(BuildDevices::probe)
                .unwrap_or_default(),
            pins: Mutex::new(HashMap::new()),
            free: Mutex::new(HashMap::new()),
            server,
            threads: settings
                .threads
                .unwrap_or_else(switchyard_backend_core::paths::inference_threads),
            servers: Mutex::new(HashMap::new()),
            gpu_processes: GpuProcesses::default(),
        }
    }

    /// The binary, or why there is none.
    pub fn binary(&self) -> Result<&Path, &str> {
        self.server.as_deref().map_err(String::as_str)
    }

    /// The pin of `d`, computed and checked against the engine once per identity.
    fn pin_of(&self, d: &Device) -> Result<Pin, String> {
        let binary = self.server.as_ref().map_err(Clone::clone)?;
        let identity = identity_of(d);
        if let Some(known) = self.pins.lock().expect("pins").get(&d.id)
            && known.identity == identity
        {
            return known.pin.clone();
        }
        let pin = pinning::pin_device(binary, &self.build, d);
        match &pin {
            Ok(p) => {
                tracing::info!(device = %d.id, pin = %p.describe(), "llama.cpp device identity checked")
            }
            Err(why) => {
                tracing::warn!(device = %d.id, reason = %why, "llama.cpp cannot use this device")
            }
        }
        self.pins.lock().expect("pins").insert(
            d.id.clone(),
            DevicePin {
                kind: d.kind(),
                identity,
                pin: pin.clone(),
            },
        );
        pin
    }

    /// The kind of a device of this node, as last advertised.
    fn kind_of(&self, device_id: &str) -> Option<DeviceKind> {
        self.pins
            .lock()
            .expect("pins")
            .get(device_id)
            .map(|p| p.kind)
    }

    fn get(&self, model: &str, device_id: &str) -> Option<Arc<Server>> {
        let servers = self.servers.lock().expect("servers");
        servers
            .get(&(model.to_string(), device_id.to_string()))
            .cloned()
    }

    /// Starts `spec` on `device_id` (no-op when it runs) and waits until it is healthy.
    pub async fn load(
        &self,
        spec: &ModelSpec,
        device_id: &str,
        pin: bool,
    ) -> Result<ResidentModel, BackendError> {
        let server = self.ensure(spec, device_id)?;
        if pin {
            server
                .pinned
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        server.ready(START_TIMEOUT).await?;
        Ok(self.describe(&server).unwrap_or_default())
    }

    /// The server of (model, device), started when there is none.
    fn ensure(&self, spec: &ModelSpec, device_id: &str) -> Result<Arc<Server>, BackendError> {
        let unusable = |reason: String| BackendError::DeviceUnsupported {
            backend: "llama_cpp".into(),
            device: device_id.into(),
            reason,
        };
        let binary = self.server.clone().map_err(unusable)?;
        let pinning = self
            .pins
            .lock()
            .expect("pins")
            .get(device_id)
            .map(|p| p.pin.clone())
            .unwrap_or_else(|| Err("not a device of this node's inventory".into()))
            .map_err(unusable)?;
        let engine = spec.engine.as_ref().ok_or_else(|| {
            BackendError::InvalidInput(format!("model {} is not an engine model", spec.name))
        })?;
        pinning
            .runs(&super::proxy::gguf_precision(spec))
            .map_err(|why| unusable(format!("{}: {why}", spec.name)))?;
        if !engine.gguf.is_file() {
            return Err(unusable(format!(
                "{}: GGUF file {} is not on this node",
                spec.name,
                engine.gguf.display()
            )));
        }
        let (pinning, device_bytes) = self.fit(spec, device_id, pinning).map_err(unusable)?;
        let key = (spec.name.clone(), device_id.to_string());
        let mut servers = self.servers.lock().expect("servers");
        if let Some(s) = servers.get(&key) {
            return Ok(s.clone());
        }
        // Locked: a random key only the agent knows (given to the engine through a 0600 file,
        // not its command line), so nothing else on the host uses it around placement.
        let api_key = format!("{:032x}", rand::random::<u128>());
        let config = EndpointConfig {
            name: format!("llama_cpp:{}@{device_id}", spec.name),
            kind: EngineKind::Openai,
            url: format!("http://127.0.0.1:{}", free_port().map_err(unusable)?),
            device: None,
            token: Some(api_key),
        };
        let server = Arc::new(Server {
            spec: spec.clone(),
            device_id: device_id.to_string(),
            endpoint: Endpoint::new(config).map_err(unusable)?,
            pin: pinning.clone(),
            device_bytes,
            phase: watch::Sender::new(Phase::Starting),
            stop: watch::Sender::new(false),
            last_used: Mutex::new(Instant::now()),
            pinned: Default::default(),
            in_flight: Default::default(),
        });
        servers.insert(key, server.clone());
        let span = info_span!("engine", model = %spec.name, device = device_id);
        let threads = self.threads;
        tokio::spawn(supervise(server.clone(), binary, threads, pinning).instrument(span));
        Ok(server)
    }

    /// `pin` with the layers that fit the device's free memory (less a tenth, at most 1 GiB,
    /// for the engine's own buffers): every layer when the model fits, else llama.cpp's `-ngl`
    /// from the GGUF's offload plan, the rest of the model on the host's CPU; and the bytes
    /// it then holds on the device.
    fn fit(&self, spec: &ModelSpec, device_id: &str, pin: Pin) -> Result<(Pin, u64), String> {
        let whole = spec.memory_bytes;
        let free = self
            .free
            .lock()
            .expect("free memory")
            .get(device_id)
            .copied();
        let (Some(free), Some(engine)) = (free, spec.engine.as_ref()) else {
            return Ok((pin, whole));
        };
        if pin.family == pinning::Family::Cpu {
            return Ok((pin, whole));
        }
        let info = switchyard_backend_core::gguf::GgufInfo::read(&engine.gguf)
            .map_err(|e| e.to_string())?;
        let budget = free.saturating_sub((free / 10).min(1 << 30));
        let ctx = spec.context_tokens.unwrap_or(4096);
        let plan = info.plan_offload(ctx, pin.parallel(engine.parallel), budget);
        if plan.whole() {
            return Ok((pin, whole));
        }
        if plan.gpu_layers == 0 {
            return Err(format!(
                "{} does not fit {device_id} even in part: {} MiB to use there, and its compute buffer and output layer alone take more",
                spec.name,
                budget >> 20
            ));
        }
        tracing::info!(
            model = %spec.name,
            device = device_id,
            layers = %format!("{}/{}", plan.gpu_layers, plan.total_layers),
            on_device = %format!("{:.0} %", plan.device_share() * 100.0),
            "partial offload: the rest of the model runs on the host's CPU"
        );
        Ok((pin.with_gpu_layers(plan.gpu_layers), plan.device_bytes))
    }

    /// Stops (model, device): SIGTERM, SIGKILL after [`GRACE`]; returns once the process is
    /// gone. False when it was not running.
    pub async fn unload(&self, model: &str, device_id: &str) -> bool {
        let Some(server) = self.get(model, device_id) else {
            return false;
        };
        server.stop.send_replace(true);
        let mut phase = server.phase.subscribe();
        let _ = phase
            .wait_for(|p| matches!(p, Phase::Stopped | Phase::Failed(_)))
            .await;
        self.servers
            .lock()
            .expect("servers")
            .remove(&(model.to_string(), device_id.to_string()));
        true
    }

    /// Takes the per-process GPU memory of the devices' telemetry (NVML), for [`Self::resident`].
    pub fn note_telemetry(&self, telemetry: &[switchyard_proto::v1::DeviceTelemetry]) {
        self.gpu_processes.update(telemetry);
    }

    /// The healthy engines, as resident models (memory: what the process holds on its
    /// device: RSS on the CPU, NVML's per-process figure on a GPU).
    pub fn resident(&self) -> Vec<ResidentModel> {
        let servers = self.servers.lock().expect("servers");
        servers.values().filter_map(|s| self.describe(s)).collect()
    }

    /// `server` as a resident model while it is healthy, with the memory its process holds
    /// on its device.
    fn describe(&self, server: &Server) -> Option<ResidentModel> {
        let mut r = server.describe()?;
        let pid = server.pid()?;
        let kind = self.kind_of(&server.device_id);
        r.memory_bytes = engine_memory(
            kind,
            rss_bytes(pid),
            self.gpu_processes.of(&server.device_id, pid),
            server.spec.memory_bytes,
        );
        Some(r)
    }

    /// Bytes each device holds for its engines (their estimates, healthy or not).
    pub fn reserved_bytes(&self) -> Vec<(String, u64)> {
        let servers = self.servers.lock().expect("servers");
        servers
            .values()
            .filter(|s| !matches!(*s.phase.borrow(), Phase::Failed(_)))
            .map(|s| (s.device_id.clone(), s.device_bytes))
            .collect()
    }

    /// The endpoint of a healthy (model, device) engine, started when it is not running and
    /// waited for while it starts or restarts; with the ms this call waited.
    pub(super) async fn endpoint(
        &self,
        spec: &ModelSpec,
        device_id: &str,
    ) -> Result<(Arc<Server>, f64), BackendError> {
        let started = Instant::now();
        let server = self.ensure(spec, device_id)?;
        server.ready(START_TIMEOUT).await?;
        *server.last_used.lock().expect("last used") = Instant::now();
        Ok((server, started.elapsed().as_secs_f64() * 1e3))
    }
}

impl Server {
    pub(super) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `vulkan:Vulkan0`, `cuda:CUDA0`, `cpu`: where the engine computes.
    pub(super) fn engine_device(&self) -> String {
        self.pin.describe()
    }

    pub(super) fn in_flight(&self) -> &std::sync::atomic::AtomicU32 {
        &self.in_flight
    }

    /// Waits until healthy; an engine that is down keeps restarting, so this waits for the
    /// restart until `timeout`.
    async fn ready(&self, timeout: Duration) -> Result<(), BackendError> {
        let mut phase = self.phase.subscribe();
        let wait = phase
            .wait_for(|p| matches!(p, Phase::Healthy { .. } | Phase::Stopped | Phase::Failed(_)));
        let unavailable = |why: String| {
            BackendError::RuntimeUnavailable(format!(
                "llama-server for {} on {}: {why}",
                self.spec.name, self.device_id
            ))
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(p)) => match &*p {
                Phase::Healthy { .. } => Ok(()),
                Phase::Failed(why) => Err(BackendError::DeviceUnsupported {
                    backend: "llama_cpp".into(),
                    device: self.device_id.clone(),
                    reason: format!("llama-server for {}: {why}", self.spec.name),
                }),
                _ => Err(unavailable("stopped".into())),
            },
            Ok(Err(_)) => Err(unavailable("stopped".into())),
            Err(_) => Err(unavailable(match &*self.phase.borrow() {
                Phase::Down(why) => why.clone(),
                _ => format!("not healthy after {} s", timeout.as_secs()),
            })),
        }
    }

    /// The process id while healthy.
    fn pid(&self) -> Option<u32> {
        match *self.phase.borrow() {
            Phase::Healthy { pid, .. } => Some(pid),
            _ => None,
        }
    }

    /// A partial offload's layout, empty when the model is on its device whole.
    fn layout(&self) -> String {
        match (self.pin.gpu_layers, self.pin.engine_device()) {
            (Some(n), Some(device)) => {
                format!("{n} layers (from the output back) on {device}, the rest on the host CPU")
            }
            _ => String::new(),
        }
    }

    fn describe(&self) -> Option<ResidentModel> {
        let Phase::Healthy { load_ms, .. } = *self.phase.borrow() else {
            return None;
        };
        Some(ResidentModel {
            model: self.spec.name.clone(),
            device_id: self.device_id.clone(),
            backend: "llama_cpp".into(),
            precision: super::proxy::gguf_precision(&self.spec),
            load_ms,
            streams: 1,
            // What the process holds on its device: filled in by `LlamaCpp::describe`.
            memory_bytes: self.device_bytes,
            layout: self.layout(),
            in_flight: self.in_flight.load(std::sync::atomic::Ordering::Relaxed),
            pinned: self.pinned.load(std::sync::atomic::Ordering::Relaxed),
            idle_ms: self
                .last_used
                .lock()
                .expect("last used")
                .elapsed()
                .as_millis() as u64,
        })
    }
}

#[cfg(test)]
mod tests;
