//! Wires the agent library to the real world: device discovery (or a fixture inventory),
//! the compiled-in backends, and the CLI's tables/JSON.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use switchyard_agent::{AgentHandle, AgentSettings, InventorySource, StageRunner};
use switchyard_backend_core::{DeviceRef, DeviceTops, ModelRegistry};
use switchyard_backends::{BackendSet, ProbeResult};
use switchyard_controller::config::Config;
use switchyard_controller::table::gib;
use switchyard_discovery::{Discovery, DiscoveryConfig};
use switchyard_proto::v1::{
    BackendSupport, Device, DeviceTelemetry, HostFacts, NodeState, NodeStatus, Tops, TopsSource,
};
use tracing::{info, warn};

/// Discovery as the agent's inventory source, with each device's probed backends.
struct DiscoveredInventory {
    discovery: Discovery,
    set: BackendSet,
    /// Probe results by device id (a hot-plugged device is probed when it appears).
    support: std::collections::HashMap<String, Vec<BackendSupport>>,
    /// Calibrated TOPS by device id (`--calibrate`).
    measured: std::collections::HashMap<String, switchyard_proto::v1::Tops>,
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
            probe_backends(&self.set, &mut new);
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

/// Scans this host (or a fixture tree) once: host facts, devices, findings.
/// Returns host facts, devices, findings and (with `calibrate_devices`) the calibration table.
pub fn scan_local(
    fixture: Option<&Path>,
    calibrate_devices: bool,
) -> (HostFacts, Vec<Device>, Vec<String>, Option<String>) {
    let mut discovery = Discovery::new(discovery_config(fixture));
    let inv = discovery.scan();
    let mut devices = inv.devices;
    let set = BackendSet::from_env();
    probe_backends(&set, &mut devices);
    let table = calibrate_devices.then(|| {
        let rows = calibrate(&set, &mut devices);
        calibration_table(&devices, &rows)
    });
    (inv.host, devices, inv.notes, table)
}

/// Starts the agent role with real discovery and every compiled-in backend.
pub async fn start_agent(config: &Config, models: ModelRegistry) -> Result<AgentHandle> {
    let a = &config.agent;
    let settings = AgentSettings {
        node_name: a.node_name.clone(),
        controller: a.controller.clone(),
        listen: a.listen,
        advertise: a.advertise.clone(),
        batch_max_wait: Duration::from_millis(a.batch_max_wait_ms),
        queue_capacity: a.queue_capacity,
    };
    switchyard_agent::session::controller_endpoint(&settings.controller)
        .map_err(anyhow::Error::msg)?;
    if let Some(f) = &a.fixture
        && !f.is_dir()
    {
        anyhow::bail!("fixture {} is not a directory", f.display());
    }
    let mut discovery = Discovery::new(discovery_config(a.fixture.as_deref()));
    let first = discovery.scan();
    for note in &first.notes {
        info!(note = %note, "discovery");
    }
    let set = tokio::task::spawn_blocking(BackendSet::from_env).await?;
    if set.backends().is_empty() {
        warn!(
            "no inference backend usable on this host: the node will register but cannot run stages (run scripts/setup.sh)"
        );
    }
    let runner = Arc::new(StageRunner::new(
        a.node_name.clone(),
        models,
        set.backends(),
        settings.batch_max_wait,
        a.queue_capacity,
    ));
    let mut probe_devices = first.devices.clone();
    let probe_set = set.clone();
    let calibrate_devices = a.calibrate;
    let probed = tokio::task::spawn_blocking(move || {
        probe_backends(&probe_set, &mut probe_devices);
        if calibrate_devices {
            let rows = calibrate(&probe_set, &mut probe_devices);
            eprintln!("{}", calibration_table(&probe_devices, &rows));
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
    });
    switchyard_agent::start(settings, inventory, runner)
        .await
        .with_context(|| format!("cannot listen on {}", a.listen))
}

/// Where the runtime executes a device: simulated devices run on the CPU.
fn device_ref(d: &Device, ordinal: u32) -> DeviceRef {
    if d.simulated {
        return DeviceRef::cpu();
    }
    DeviceRef {
        id: d.id.clone(),
        device_type: switchyard_backend_core::DeviceType::from(d.kind()),
        ordinal,
    }
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
    let mut ordinals: std::collections::HashMap<i32, u32> = std::collections::HashMap::new();
    for d in devices.iter_mut() {
        let n = ordinals.entry(d.kind).or_default();
        let dref = device_ref(d, *n);
        *n += 1;
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
            d.measured_tops = Some(switchyard_proto::v1::Tops {
                int8_tops: tops,
                source: switchyard_proto::v1::TopsSource::Measured as i32,
                detail,
            });
        }
    }
    rows
}

/// The calibration table: measured beside published figures.
pub fn calibration_table(devices: &[Device], rows: &[CalibrationRow]) -> String {
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let d = devices.iter().find(|d| d.id == r.device_id);
            let published = d
                .and_then(|d| d.tops.as_ref())
                .map(|t| format!("{:.3} ({})", t.int8_tops, t.source().short_name()))
                .unwrap_or_else(|| "-".into());
            let (measured, note) = match &r.result {
                Ok(c) => (
                    format!("{:.3} {}", c.tops, c.precision),
                    c.note.clone().unwrap_or_default(),
                ),
                Err(e) => ("failed".into(), e.clone()),
            };
            vec![
                r.device_id.clone(),
                r.backend.clone(),
                measured,
                published,
                note,
            ]
        })
        .collect();
    switchyard_controller::table::render(
        &[
            "DEVICE",
            "BACKEND",
            "MEASURED TOPS",
            "PUBLISHED TOPS",
            "NOTE",
        ],
        &table_rows,
    )
}

/// Probes every backend × device pair once and records the result on the devices.
/// Simulated devices inherit the CPU's results (they execute there).
pub fn probe_backends(set: &BackendSet, devices: &mut [Device]) {
    let mut ordinals: std::collections::HashMap<i32, u32> = std::collections::HashMap::new();
    let mut refs = Vec::new();
    for d in devices.iter() {
        let n = ordinals.entry(d.kind).or_default();
        refs.push(device_ref(d, *n));
        *n += 1;
    }
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
            })
            .collect();
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

fn kind_name(d: &Device) -> &'static str {
    d.kind().short_name()
}

fn tops_cell(d: &Device) -> (String, String) {
    match (&d.measured_tops, &d.tops) {
        (Some(m), Some(t)) => (
            format!("{:.1} (measured) / {:.1}", m.int8_tops, t.int8_tops),
            t.source().short_name().to_string(),
        ),
        (_, Some(t)) => (
            format!("{:.1}", t.int8_tops),
            t.source().short_name().to_string(),
        ),
        _ => ("0.0".into(), "unknown".into()),
    }
}

/// One row of the devices table.
pub fn device_row(node: &str, d: &Device) -> Vec<String> {
    let (tops, source) = tops_cell(d);
    let used = d.memory_total_bytes.saturating_sub(d.memory_free_bytes);
    let backends: Vec<&str> = d
        .backends
        .iter()
        .filter(|b| b.usable)
        .map(|b| b.backend.as_str())
        .collect();
    let mut health = d.health().short_name().to_string();
    if !d.health_reason.is_empty() {
        health = format!("{health}: {}", d.health_reason);
    }
    let mut model = d.model.clone();
    if d.simulated {
        model.push_str(" [simulated]");
    }
    vec![
        node.to_string(),
        d.id.clone(),
        kind_name(d).to_string(),
        model,
        format!("{}/{}", gib(used), gib(d.memory_total_bytes)),
        tops,
        source,
        if backends.is_empty() {
            "-".into()
        } else {
            backends.join(",")
        },
        health,
    ]
}

/// One row of the status table.
pub fn node_row(n: &NodeStatus) -> Vec<String> {
    let info = n.info.clone().unwrap_or_default();
    let total: u64 = info.devices.iter().map(|d| d.memory_total_bytes).sum();
    let free: u64 = info.devices.iter().map(|d| d.memory_free_bytes).sum();
    let tops: f64 = info
        .devices
        .iter()
        .map(|d| {
            d.measured_tops
                .as_ref()
                .or(d.tops.as_ref())
                .map(|t| t.int8_tops)
                .unwrap_or(0.0)
        })
        .sum();
    let kinds: Vec<String> = info
        .devices
        .iter()
        .map(|d| {
            if d.simulated {
                format!("{}*", kind_name(d))
            } else {
                kind_name(d).to_string()
            }
        })
        .collect();
    vec![
        info.node_name.clone(),
        NodeState::try_from(n.state)
            .unwrap_or(NodeState::Unspecified)
            .short_name()
            .to_string(),
        format!("{:.1}s ago", n.last_heartbeat_age_ms as f64 / 1000.0),
        format!("{} ({})", info.devices.len(), kinds.join(",")),
        format!("{}/{}", gib(total.saturating_sub(free)), gib(total)),
        format!("{tops:.1}"),
        info.resident_models.len().to_string(),
        info.agent_endpoint.clone(),
    ]
}

/// A device as JSON.
pub fn device_json(d: &Device) -> Value {
    let tops = |t: &Option<switchyard_proto::v1::Tops>| {
        t.as_ref().map(
            |t| json!({"int8": t.int8_tops, "source": t.source().short_name(), "detail": t.detail}),
        )
    };
    let telemetry = d.telemetry.as_ref().map(|t| {
        json!({
            "memory_free_bytes": t.memory_free_bytes,
            "utilization_ratio": t.utilization_ratio,
            "temperature_celsius": t.temperature_celsius,
            "power_watts": t.power_watts,
        })
    });
    json!({
        "id": d.id,
        "kind": kind_name(d),
        "vendor": d.vendor,
        "model": d.model,
        "memory_total_bytes": d.memory_total_bytes,
        "memory_free_bytes": d.memory_free_bytes,
        "tops": tops(&d.tops),
        "measured_tops": tops(&d.measured_tops),
        "backends": d.backends.iter().map(|b| json!({"backend": b.backend, "usable": b.usable, "reason": b.reason})).collect::<Vec<_>>(),
        "health": d.health().short_name(),
        "health_reason": d.health_reason,
        "simulated": d.simulated,
        "max_concurrency": d.max_concurrency,
        "attributes": d.attributes,
        "telemetry": telemetry,
    })
}

/// `status --output json`.
pub fn nodes_json(nodes: &[NodeStatus]) -> Value {
    Value::Array(
        nodes
            .iter()
            .map(|n| {
                let info = n.info.clone().unwrap_or_default();
                json!({
                    "name": info.node_name,
                    "node_id": n.node_id,
                    "state": NodeState::try_from(n.state).unwrap_or(NodeState::Unspecified).short_name(),
                    "last_heartbeat_age_ms": n.last_heartbeat_age_ms,
                    "heartbeats_received": n.heartbeats_received,
                    "agent_version": info.agent_version,
                    "endpoint": info.agent_endpoint,
                    "devices": info.devices.iter().map(device_json).collect::<Vec<_>>(),
                    "resident_models": info.resident_models.iter().map(|r| json!({"model": r.model, "device_id": r.device_id, "backend": r.backend, "memory_bytes": r.memory_bytes, "in_flight": r.in_flight, "pinned": r.pinned, "idle_ms": r.idle_ms})).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// `devices --output json`.
pub fn devices_json(per_node: &[(String, Vec<Device>)]) -> Value {
    Value::Array(
        per_node
            .iter()
            .flat_map(|(node, devs)| {
                devs.iter().map(move |d| {
                    let mut v = device_json(d);
                    v["node"] = json!(node);
                    v
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure() -> DeviceTops {
        DeviceTops {
            int8_tops: 46.08,
            detail: "OpenVINO DEVICE_GOPS of GPU.0: 46080 GOPS (i8)".into(),
        }
    }

    #[test]
    fn a_device_figure_fills_an_unknown_model_and_is_noted_beside_a_catalog_one() {
        // Unknown to the catalog: the runtime's figure becomes the TOPS, labelled as such.
        let mut d = Device {
            id: "pci-0000:03:00.0".into(),
            tops: Some(Tops {
                int8_tops: 0.0,
                source: TopsSource::Unknown as i32,
                detail: "not in the catalog".into(),
            }),
            ..Default::default()
        };
        apply_device_tops(&mut d, "openvino", figure());
        let t = d.tops.clone().unwrap();
        assert_eq!(t.source(), TopsSource::DeviceProperty);
        assert_eq!(t.int8_tops, 46.08);
        assert!(t.detail.contains("DEVICE_GOPS"), "{}", t.detail);

        // A catalog figure stays; the runtime's is noted in the detail.
        let mut d = Device {
            tops: Some(Tops {
                int8_tops: 262.0,
                source: TopsSource::Catalog as i32,
                detail: "Intel Arc A770 spec sheet".into(),
            }),
            ..Default::default()
        };
        apply_device_tops(&mut d, "openvino", figure());
        let t = d.tops.unwrap();
        assert_eq!((t.source(), t.int8_tops), (TopsSource::Catalog, 262.0));
        assert!(
            t.detail
                .starts_with("Intel Arc A770 spec sheet; openvino reports 46.1 TOPS"),
            "{}",
            t.detail
        );
    }
}
