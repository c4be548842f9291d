//! Prometheus metrics, served at `GET /metrics` on the controller's HTTP port.
//!
//! Two kinds of series:
//! * events, recorded where they happen through the `metrics` facade (stage durations,
//!   failures, retries, generated tokens, HTTP requests) and rendered by
//!   `metrics-exporter-prometheus`;
//! * the cluster's state (nodes, devices, telemetry, resident models), written from a
//!   snapshot at scrape time, so a device that leaves the cluster leaves the scrape too.
//!
//! Names follow Prometheus conventions: one `switchyard_` prefix, base units (`_seconds`,
//! `_bytes`, `_celsius`, `_watts`, ratios 0–1), counters end in `_total`, low-cardinality
//! labels. NVIDIA series carry a `UUID` label equal to NVML's GPU UUID so that PromQL joins
//! with the DCGM exporter's `DCGM_FI_DEV_*` series work.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_histogram, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use switchyard_proto::v1::{Device, DeviceHealth, DeviceKind, NodeState, NodeStatus};
use tracing::warn;

/// Stage durations (dispatch to reply, as the controller sees them).
pub const STAGE_DURATION: &str = "switchyard_stage_duration_seconds";
/// Stages that failed on a device (each is retried elsewhere while attempts remain).
pub const STAGE_FAILURES: &str = "switchyard_stage_failures_total";
/// Re-placements of a stage after a failure.
pub const STAGE_RETRIES: &str = "switchyard_stage_retries_total";
/// Tokens generated.
pub const GENERATED_TOKENS: &str = "switchyard_generated_tokens_total";
/// HTTP requests answered.
pub const HTTP_REQUESTS: &str = "switchyard_http_requests_total";
/// HTTP request duration to the response head.
pub const HTTP_DURATION: &str = "switchyard_http_request_duration_seconds";

/// Inputs in the merged runtime call each classify/embed request rode in.
pub const BATCH_SIZE: &str = "switchyard_stage_batch_size";

/// Histogram buckets for batch sizes: powers of two to 256.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Histogram buckets for latencies: 1 ms to 2 min.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls return the same handle). `None`
/// when another recorder was installed first: events are then not exported, the cluster
/// series still are.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let built = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), BATCH_BUCKETS))
                .and_then(|b| b.install_recorder());
            match built {
                Ok(handle) => {
                    describe();
                    spawn_upkeep(handle.clone());
                    Some(handle)
                }
                Err(e) => {
                    warn!(error = %e, "Prometheus recorder not installed; /metrics shows cluster state only");
                    None
                }
            }
        })
        .clone()
}

/// How often the recorder's histograms are drained into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Drains the histograms every [`UPKEEP_EVERY`]. The recorder keeps every sample until an
/// upkeep folds it into the buckets; without one (nobody scraping `/metrics`), 50,000
/// requests/s grew the controller by about 1 MB/s (seen in the soak).
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        warn!(error = %e, "metrics upkeep thread not started: histograms drain only on scrape");
    }
}

fn describe() {
    describe_histogram!(
        STAGE_DURATION,
        metrics::Unit::Seconds,
        "Time from dispatching a stage to an agent to its reply, by stage, node, device, backend and precision."
    );
    describe_histogram!(
        BATCH_SIZE,
        metrics::Unit::Count,
        "Inputs in the merged runtime call a classify or embed request rode in (the agent's dynamic batching), by stage, node and device; one sample per request."
    );
    describe_counter!(
        STAGE_FAILURES,
        "Stages that failed on a device, by stage, node, device and error class."
    );
    describe_counter!(
        STAGE_RETRIES,
        "Stages re-placed on another device after a failure."
    );
    describe_counter!(GENERATED_TOKENS, "Tokens generated, by model.");
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route and status."
    );
    describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "HTTP request time to the response head (a stream's first byte), by method and route."
    );
}

/// A stage answered by `node`/`device` through `backend`, computing at `precision`, after
/// `took`.
pub fn stage_completed(
    stage: &str,
    node: &str,
    device: &str,
    backend: &str,
    precision: &str,
    took: Duration,
) {
    histogram!(
        STAGE_DURATION,
        "stage" => stage.to_string(),
        "node" => node.to_string(),
        "device" => device.to_string(),
        "backend" => backend.to_string(),
        "precision" => precision.to_string(),
    )
    .record(took.as_secs_f64());
}

/// A classify/embed request rode in a runtime call of `size` inputs on `node`/`device`.
pub fn batch_size(stage: &str, node: &str, device: &str, size: u32) {
    histogram!(
        BATCH_SIZE,
        "stage" => stage.to_string(),
        "node" => node.to_string(),
        "device" => device.to_string(),
    )
    .record(f64::from(size));
}

/// A stage failed on `node`/`device` with an error of `class` and is re-placed (or given up).
pub fn stage_failed(stage: &str, node: &str, device: &str, class: &str) {
    counter!(
        STAGE_FAILURES,
        "stage" => stage.to_string(),
        "node" => node.to_string(),
        "device" => device.to_string(),
        "class" => class.to_string(),
    )
    .increment(1);
    counter!(STAGE_RETRIES, "stage" => stage.to_string()).increment(1);
}

/// `tokens` more tokens generated by `model`.
pub fn tokens_generated(model: &str, tokens: u64) {
    counter!(GENERATED_TOKENS, "model" => model.to_string()).increment(tokens);
}

/// An HTTP request on `route` (the route template, never the raw path) answered `status`.
pub fn http_request(method: &str, route: &str, status: u16, took: Duration) {
    counter!(
        HTTP_REQUESTS,
        "method" => method.to_string(),
        "route" => route.to_string(),
        "status" => status.to_string(),
    )
    .increment(1);
    histogram!(
        HTTP_DURATION,
        "method" => method.to_string(),
        "route" => route.to_string(),
    )
    .record(took.as_secs_f64());
}

/// The full scrape: recorded events plus the cluster's state from `nodes`.
pub fn render(nodes: &[NodeStatus]) -> String {
    let mut out = String::new();
    if let Some(handle) = install() {
        handle.run_upkeep();
        out.push_str(&handle.render());
    }
    out.push_str(&render_cluster(nodes));
    out
}

/// The `/metrics` answer: the scrape, or 401 when `[api] metrics_token` is set and the
/// request did not present it.
pub fn respond(allowed: bool, cluster: &crate::cluster::ClusterState) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    if !allowed {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\"")],
            "/metrics needs the token set as [api] metrics_token: send 'Authorization: Bearer <token>' (Prometheus: authorization.credentials)\n",
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&cluster.snapshot()),
    )
        .into_response()
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `{k="v",...}` from label pairs.
fn labels(pairs: &[(&str, &str)]) -> String {
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// One metric family written by hand: header once, then samples.
struct Family {
    name: &'static str,
    samples: Vec<(String, f64)>,
}

impl Family {
    fn new(name: &'static str) -> Self {
        Family {
            name,
            samples: Vec::new(),
        }
    }

    fn push(&mut self, labels: String, value: f64) {
        self.samples.push((labels, value));
    }

    fn write(&self, out: &mut String, kind: &str, help: &str) {
        let _ = writeln!(out, "# HELP {} {help}", self.name);
        let _ = writeln!(out, "# TYPE {} {kind}", self.name);
        for (l, v) in &self.samples {
            let _ = writeln!(out, "{}{l} {v}", self.name);
        }
    }
}

/// The identifying labels of a device's series (`UUID` on NVIDIA GPUs, for DCGM joins;
/// `engine` on an attached endpoint's pseudo-device, which has no GPU UUID of its own).
fn device_labels<'a>(node: &'a str, d: &'a Device) -> Vec<(&'static str, &'a str)> {
    let mut l = vec![
        ("node", node),
        ("device", d.id.as_str()),
        ("kind", d.kind().short_name()),
    ];
    if !d.engine.is_empty() {
        l.push(("engine", d.engine.as_str()));
    } else if d.kind() == DeviceKind::NvidiaGpu {
        l.push(("UUID", d.id.as_str()));
    }
    l
}

/// The cluster's state as Prometheus text, from a snapshot of every node.
pub fn render_cluster(nodes: &[NodeStatus]) -> String {
    let mut build = Family::new("switchyard_build_info");
    build.push(labels(&[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    let mut states = Family::new("switchyard_nodes");
    let mut age = Family::new("switchyard_node_last_heartbeat_age_seconds");
    let mut heartbeats = Family::new("switchyard_node_heartbeats_received_total");
    let mut info = Family::new("switchyard_device_info");
    let mut total = Family::new("switchyard_device_memory_total_bytes");
    let mut free = Family::new("switchyard_device_memory_free_bytes");
    let mut util = Family::new("switchyard_device_utilization_ratio");
    let mut temp = Family::new("switchyard_device_temperature_celsius");
    let mut power = Family::new("switchyard_device_power_watts");
    let mut tops = Family::new("switchyard_device_int8_tops");
    let mut healthy = Family::new("switchyard_device_healthy");
    let mut backend_usable = Family::new("switchyard_device_backend_usable");
    let mut resident = Family::new("switchyard_model_resident_bytes");

    for state in [NodeState::Ready, NodeState::Lost, NodeState::Draining] {
        let n = nodes.iter().filter(|s| s.state() == state).count();
        states.push(labels(&[("state", state.short_name())]), n as f64);
    }
    for status in nodes {
        let Some(node_info) = &status.info else {
            continue;
        };
        let node = node_info.node_name.as_str();
        let node_labels = labels(&[("node", node)]);
        age.push(
            node_labels.clone(),
            status.last_heartbeat_age_ms as f64 / 1000.0,
        );
        heartbeats.push(node_labels, status.heartbeats_received as f64);
        for d in &node_info.devices {
            let base = device_labels(node, d);
            let l = labels(&base);
            let mut with_info = base.clone();
            with_info.push(("vendor", d.vendor.as_str()));
            with_info.push(("model", d.model.as_str()));
            with_info.push(("simulated", if d.simulated { "true" } else { "false" }));
            info.push(labels(&with_info), 1.0);
            total.push(l.clone(), d.memory_total_bytes as f64);
            free.push(l.clone(), d.memory_free_bytes as f64);
            if let Some(t) = &d.telemetry {
                if let Some(v) = t.utilization_ratio {
                    util.push(l.clone(), v);
                }
                if let Some(v) = t.temperature_celsius {
                    temp.push(l.clone(), v);
                }
                if let Some(v) = t.power_watts {
                    power.push(l.clone(), v);
                }
            }
            for t in d.tops.iter().chain(d.measured_tops.iter()) {
                let mut with_source = base.clone();
                with_source.push(("source", t.source().short_name()));
                tops.push(labels(&with_source), t.int8_tops);
            }
            let ok = matches!(
                d.health(),
                DeviceHealth::Healthy | DeviceHealth::Unspecified
            );
            healthy.push(l, if ok { 1.0 } else { 0.0 });
            for b in &d.backends {
                let mut with_backend = base.clone();
                with_backend.push(("backend", b.backend.as_str()));
                backend_usable.push(labels(&with_backend), if b.usable { 1.0 } else { 0.0 });
            }
        }
        for r in &node_info.resident_models {
            let kind = node_info
                .devices
                .iter()
                .find(|d| d.id == r.device_id)
                .map_or("unknown", |d| d.kind().short_name());
            resident.push(
                labels(&[
                    ("node", node),
                    ("device", r.device_id.as_str()),
                    ("kind", kind),
                    ("model", r.model.as_str()),
                    ("backend", r.backend.as_str()),
                    ("precision", r.precision.as_str()),
                    ("pinned", if r.pinned { "true" } else { "false" }),
                ]),
                r.memory_bytes as f64,
            );
        }
    }

    let mut out = String::new();
    build.write(
        &mut out,
        "gauge",
        "Switchyard version of this controller (always 1).",
    );
    states.write(&mut out, "gauge", "Nodes by state.");
    age.write(
        &mut out,
        "gauge",
        "Seconds since the node's last heartbeat.",
    );
    heartbeats.write(
        &mut out,
        "counter",
        "Heartbeats received from the node since it registered.",
    );
    info.write(
        &mut out,
        "gauge",
        "Every device in the cluster (always 1), with vendor and model.",
    );
    total.write(&mut out, "gauge", "Device memory usable by models, bytes.");
    free.write(
        &mut out,
        "gauge",
        "Device memory free (never more than what resident models leave), bytes.",
    );
    util.write(&mut out, "gauge", "Device utilisation, 0 to 1.");
    temp.write(&mut out, "gauge", "Device temperature, degrees Celsius.");
    power.write(&mut out, "gauge", "Device power draw, watts.");
    tops.write(
        &mut out,
        "gauge",
        "Dense int8 TOPS, by source (catalog, device_property, measured).",
    );
    healthy.write(
        &mut out,
        "gauge",
        "1 when the device is usable for placement.",
    );
    backend_usable.write(
        &mut out,
        "gauge",
        "1 when the backend (or engine build) runs on the device; why not is in `switchyard devices`.",
    );
    resident.write(
        &mut out,
        "gauge",
        "Memory reserved by each resident model, bytes.",
    );
    out
}

#[cfg(test)]
mod tests;
