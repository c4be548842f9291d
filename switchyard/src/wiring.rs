//! Wires the agent library to the real world: device discovery (or a fixture inventory) and
//! the compiled-in backends (probe, calibration, device-reported TOPS). Rendering is in
//! `output`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::config::Config;
use anyhow::Result;
use switchyard_agent::inventory::runtime_refs;
use switchyard_agent::{AgentHandle, InventorySource, StageRunner};
use switchyard_backend_core::{DeviceRef, DeviceTops, ModelRegistry};
use switchyard_backends::{BackendSet, ProbeResult};
use switchyard_discovery::{Discovery, DiscoveryConfig};
use switchyard_proto::v1::{BackendSupport, Device, DeviceTelemetry, HostFacts, Tops, TopsSource};
use tracing::{info, warn};

use crate::output::table;

#[cfg(test)]
mod tests;

/// Discovery as the agent's inventory source, with each device's probed backends.
struct DiscoveredInventory {
    discovery: Discovery,
    set: BackendSet,
    /// Probe results by device id (a hot-plugged device is probed when it appears).
    support: HashMap<String, Vec<BackendSupport>>,
    /// Calibrated TOPS by device id (`--calibrate`).
    measured: HashMap<String, Tops>,
    /// The registry, to probe a hot-plugged NPU with the models it would get.
    models: ModelRegistry,
}

impl InventorySource for DiscoveredInventory {
    fn scan(&mut self) -> (HostFacts, Vec<Device>) {
        let inv = self.discovery.scan();
        let mut devices = inv.devices;
        let new: Vec<Device> = devices
            .iter()
            .filter(|d| !self.support.contains_key(&d.id))
            .cloned()
            .collect();
        if !new.is_empty() {
            let mut new = new;
            probe_backends(&self.set, &mut new, Some(&self.models));
            for d in new {
                self.support.insert(d.id, d.backends);
            }
        }
        for d in &mut devices {
            d.backends = self.support.get(&d.id).cloned().unwrap_or_default();
            if let Some(t) = self.measured.get(&d.id) {
                d.measured_tops = Some(t.clone());
            }
        }
        (inv.host, devices)
    }

    fn telemetry(&mut self, devices: &[Device]) -> Vec<DeviceTelemetry> {
        let inv = switchyard_discovery::Inventory {
            host: HostFacts::default(),
            devices: devices.to_vec(),
            notes: Vec::new(),
        };
        self.discovery.telemetry(&inv)
    }
}

fn discovery_config(fixture: Option<&Path>) -> DiscoveryConfig {
    match fixture {
        Some(root) => DiscoveryConfig::fixture(root),
        None => DiscoveryConfig::host(),
    }
}

/// One scan of this host (or a fixture tree), with probed backends.
#[derive(Debug)]
pub struct LocalScan {
    pub host: HostFacts,
    pub devices: Vec<Device>,
    /// Discovery findings (missing drivers, permissions, ...).
    pub notes: Vec<String>,
    /// The calibration measurements, when asked for.
    pub calibration: Option<Vec<CalibrationRow>>,
}

/// Scans this host (or a fixture tree) once and probes every backend on every device; with
/// `calibrate_devices`, also measures them.
pub fn scan_local(fixture: Option<&Path>, calibrate_devices: bool) -> LocalScan {
    let mut discovery = Discovery::new(discovery_config(fixture));
    let inv = discovery.scan();
    let mut devices = inv.devices;
    let set = BackendSet::from_env();
    probe_backends(&set, &mut devices, None);
    // Which devices the llama.cpp engine tree can generate on (the same check the agent
    // makes): GPUs that match no engine device are shown unusable, with the reason.
    switchyard_agent::engines::LlamaCpp::new(&Default::default()).advertise_on(&mut devices);
    let calibration = calibrate_devices.then(|| calibrate(&set, &mut devices));
    let mut notes = inv.notes;
    notes.extend(no_backend(&set));
    LocalScan {
        host: inv.host,
        devices,
        notes,
        calibration,
    }
}

/// When no backend is usable: one message with each distinct reason (the ORT providers
/// share one library, so a missing library is named once).
pub fn no_backend(set: &BackendSet) -> Option<String> {
    if !set.backends().is_empty() {
        return None;
    }
    let mut reasons: Vec<&str> = Vec::new();
    for (_, why) in &set.unavailable {
        if !reasons.contains(&why.as_str()) {
            reasons.push(why);
        }
    }
    Some(format!(
        "no inference backend usable on this host, the node can register but not run stages: {}",
        reasons.join("; ")
    ))
}

/// Starts the agent role with real discovery and every compiled-in backend.
pub async fn start_agent(config: &Config, models: ModelRegistry) -> Result<AgentHandle> {
    let a = &config.agent;
    let mut settings = a.clone();
    settings.llama_cpp = config.engines.llama_cpp.clone();
    switchyard_agent::session::controller_endpoint(&settings.controller)
        .map_err(anyhow::Error::msg)?;
    if let Some(f) = &a.fixture
        && !f.is_dir()
    {
        anyhow::bail!("fixture {} is not a directory", f.display());
    }
    let mut dc = discovery_config(a.fixture.as_deref());
    dc.software_gpu |= config.discovery.software_gpu;
    dc.memory_limits = config
        .discovery
        .memory_limit_mib
        .iter()
        .map(|(id, mib)| (id.clone(), mib.saturating_mul(1 << 20)))
        .collect();
    let mut discovery = Discovery::new(dc);
    let first = discovery.scan();
    for note in &first.notes {
        info!(note = %note, "discovery");
    }
    let set = tokio::task::spawn_blocking(BackendSet::from_env).await?;
    if let Some(why) = no_backend(&set) {
        warn!("{why}");
    }
    let runner = Arc::new(StageRunner::new(
        a.node_name.clone(),
        models.clone(),
        set.backends(),
        a.queue_capacity,
    ));
    let mut probe_devices = first.devices.clone();
    let probe_set = set.clone();
    let calibrate_devices = a.calibrate;
    let probe_models = models.clone();
    let probed = tokio::task::spawn_blocking(move || {
        probe_backends(&probe_set, &mut probe_devices, Some(&probe_models));
        if calibrate_devices {
            let rows = calibrate(&probe_set, &mut probe_devices);
            eprintln!("{}", table::calibration(&probe_devices, &rows));
        }
        probe_devices
    })
    .await?;
    let measured = probed
        .iter()
        .filter_map(|d| d.measured_tops.clone().map(|t| (d.id.clone(), t)))
        .collect();
    let support = probed.into_iter().map(|d| (d.id, d.backends)).collect();
    let inventory: Box<dyn InventorySource> = Box::new(DiscoveredInventory {
        discovery,
        set,
        support,
        measured,
        models,
    });
    Ok(switchyard_agent::start(settings, inventory, runner).await?)
}

/// One calibration measurement.
#[derive(Debug, Clone)]
pub struct CalibrationRow {
    pub device_id: String,
    pub backend: String,
    pub result: Result<switchyard_backends::Calibration, String>,
}

/// Runs the matmul micro-benchmark through every usable backend on every real device and
/// records the best figure as the device's measured TOPS. Simulated devices are skipped
/// (they run on the CPU; their catalog figure stays).
pub fn calibrate(set: &BackendSet, devices: &mut [Device]) -> Vec<CalibrationRow> {
    let mut rows = Vec::new();
    let refs = runtime_refs(devices);
    for (d, dref) in devices.iter_mut().zip(refs) {
        if d.simulated {
            continue;
        }
        let mut best: Option<(f64, String)> = None;
        for b in d.backends.iter().filter(|b| b.usable) {
            let result = set.calibrate(&dref, &b.backend).map_err(|e| e.to_string());
            if let Ok(c) = &result
                && best.as_ref().is_none_or(|(t, _)| c.tops > *t)
            {
                best = Some((
                    c.tops,
                    format!(
                        "{} matmul via {} ({})",
                        c.precision,
                        b.backend,
                        c.per_size
                            .iter()
                            .map(|(n, t)| format!("N={n}: {t:.3}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            rows.push(CalibrationRow {
                device_id: d.id.clone(),
                backend: b.backend.clone(),
                result,
            });
        }
        if let Some((tops, detail)) = best {
            d.measured_tops = Some(Tops {
                int8_tops: tops,
                source: TopsSource::Measured as i32,
                detail,
            });
        }
    }
    rows
}

/// Probes every backend × device pair once and records the result on the devices.
/// Simulated devices inherit the CPU's results (they execute there). With `models`, an Intel
/// NPU is also probed with the registry's models themselves (their shapes, their precision):
/// a backend under which none of them runs there is marked unusable, with each reason.
pub fn probe_backends(set: &BackendSet, devices: &mut [Device], models: Option<&ModelRegistry>) {
    let refs = runtime_refs(devices);
    let cpu_results: Vec<ProbeResult> = set.probe(&[DeviceRef::cpu()]);
    let real: Vec<DeviceRef> = refs
        .iter()
        .zip(devices.iter())
        .filter(|(_, d)| !d.simulated)
        .map(|(r, _)| r.clone())
        .collect();
    let results = set.probe(&real);
    for d in devices.iter_mut() {
        let mine: Vec<&ProbeResult> = if d.simulated {
            cpu_results.iter().collect()
        } else {
            results.iter().filter(|r| r.device_id == d.id).collect()
        };
        d.backends = mine
            .into_iter()
            .map(|r| BackendSupport {
                backend: r.backend.clone(),
                usable: r.result.is_ok(),
                reason: r.result.clone().err().unwrap_or_default(),
                precisions: r
                    .result
                    .as_ref()
                    .map(|ps| ps.iter().map(|p| p.as_str().to_string()).collect())
                    .unwrap_or_default(),
                engine_build: String::new(),
            })
            .collect();
    }
    if let Some(models) = models {
        for (d, r) in devices.iter_mut().zip(&refs) {
            if !d.simulated && d.kind() == switchyard_proto::v1::DeviceKind::IntelNpu {
                probe_npu_models(set, d, r, models);
            }
        }
    }
    for d in devices.iter() {
        for b in d.backends.iter().filter(|b| !b.usable) {
            info!(device = %d.id, backend = %b.backend, reason = %b.reason, "backend not usable on device");
        }
    }
    for (d, r) in devices.iter_mut().zip(&refs) {
        if !d.simulated
            && let Some((backend, figure)) = set.device_tops(r)
        {
            apply_device_tops(d, backend, figure);
        }
    }
}

/// Probes `d` (an NPU) with every registry model whose files are here, through each backend
/// the tiny probe passed: one that runs none of them is unusable there.
fn probe_npu_models(set: &BackendSet, d: &mut Device, r: &DeviceRef, models: &ModelRegistry) {
    let available = models.available();
    for support in d.backends.iter_mut().filter(|b| b.usable) {
        let Ok(backend) = set.get(&support.backend) else {
            continue;
        };
        let mut ran = Vec::new();
        let mut failed = Vec::new();
        for spec in models.iter().filter(|s| available.contains(&s.name)) {
            match backend.probe_model(spec, r) {
                Ok(()) => ran.push(spec.name.clone()),
                Err(e) => failed.push(format!("{}: {e}", spec.name)),
            }
        }
        info!(device = %d.id, backend = %support.backend, runs = ?ran, fails = ?failed, "NPU probed with the registry's models");
        if ran.is_empty() && !failed.is_empty() {
            support.usable = false;
            support.reason = format!("no registry model runs here: {}", failed.join("; "));
        }
    }
}

/// Records a runtime-reported device figure: it becomes the device's TOPS when the catalog
/// does not know the model; beside a catalog figure it is only noted in the detail (the
/// catalog holds vendor-published dense int8 figures, which we trust more than a runtime's
/// estimate).
pub fn apply_device_tops(d: &mut Device, backend: &str, figure: DeviceTops) {
    info!(device = %d.id, backend, tops = figure.int8_tops, detail = %figure.detail, "device-reported int8 TOPS");
    let known = d
        .tops
        .as_ref()
        .is_some_and(|t| t.source() != TopsSource::Unknown && t.int8_tops > 0.0);
    if known {
        let t = d.tops.as_mut().expect("known");
        t.detail = format!(
            "{}; {} reports {:.1} TOPS ({})",
            t.detail, backend, figure.int8_tops, figure.detail
        );
    } else {
        d.tops = Some(Tops {
            int8_tops: figure.int8_tops,
            source: TopsSource::DeviceProperty as i32,
            detail: figure.detail,
        });
    }
}
