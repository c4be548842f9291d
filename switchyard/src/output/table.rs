//! Plain-text tables for the CLI: left-aligned columns sized to their content, and the one
//! device row (`devices`), node row (`status`) and calibration table built on them.

use switchyard_proto::v1::{Device, NodeState, NodeStatus};

use super::kind_name;
use crate::wiring::CalibrationRow;

/// Renders `rows` under `headers` with two spaces between columns.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// Bytes as GiB with one decimal.
pub fn gib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1u64 << 30) as f64)
}

/// `used/total` in GiB.
fn memory_cell(total: u64, free: u64) -> String {
    format!("{}/{}", gib(total.saturating_sub(free)), gib(total))
}

/// The TOPS cell and its source: `measured (measured) / published` when calibrated.
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

/// The figure placement uses: measured when calibrated, else published, else 0.
fn effective_tops(d: &Device) -> f64 {
    d.measured_tops
        .as_ref()
        .or(d.tops.as_ref())
        .map(|t| t.int8_tops)
        .unwrap_or(0.0)
}

/// Columns of the devices table.
pub const DEVICE_HEADERS: [&str; 9] = [
    "NODE",
    "DEVICE",
    "KIND",
    "MODEL",
    "MEMORY USED/TOTAL (GiB)",
    "TOPS (int8)",
    "SOURCE",
    "BACKENDS",
    "HEALTH",
];

/// One row of the devices table.
pub fn device_row(node: &str, d: &Device) -> Vec<String> {
    let (tops, source) = tops_cell(d);
    // Each usable backend with the precisions it computes at there: `openvino(f32/bf16)`;
    // an engine with the build that serves the device: `llama_cpp(cpu build)`.
    let backends: Vec<String> = d
        .backends
        .iter()
        .filter(|b| b.usable)
        .map(|b| {
            if !b.engine_build.is_empty() {
                format!("{}({})", b.backend, b.engine_build)
            } else if b.precisions.is_empty() {
                b.backend.clone()
            } else {
                format!("{}({})", b.backend, b.precisions.join("/"))
            }
        })
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
        memory_cell(d.memory_total_bytes, d.memory_free_bytes),
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

/// The devices table: one row per device of every node.
pub fn devices(per_node: &[(String, Vec<Device>)]) -> String {
    let rows: Vec<Vec<String>> = per_node
        .iter()
        .flat_map(|(node, devs)| devs.iter().map(move |d| device_row(node, d)))
        .collect();
    render(&DEVICE_HEADERS, &rows)
}

/// Columns of the status table.
pub const NODE_HEADERS: [&str; 8] = [
    "NODE",
    "STATE",
    "LAST HEARTBEAT",
    "DEVICES",
    "MEMORY USED/TOTAL (GiB)",
    "TOPS (int8)",
    "MODELS",
    "ENDPOINT",
];

/// One row of the status table: the node's devices summed (kinds, memory, TOPS).
pub fn node_row(n: &NodeStatus) -> Vec<String> {
    let info = n.info.clone().unwrap_or_default();
    let total: u64 = info.devices.iter().map(|d| d.memory_total_bytes).sum();
    let free: u64 = info.devices.iter().map(|d| d.memory_free_bytes).sum();
    let tops: f64 = info.devices.iter().map(effective_tops).sum();
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
        memory_cell(total, free),
        format!("{tops:.1}"),
        info.resident_models.len().to_string(),
        info.agent_endpoint.clone(),
    ]
}

/// The status table, then `N node(s), M ready`.
pub fn nodes(nodes: &[NodeStatus]) -> String {
    let rows: Vec<Vec<String>> = nodes.iter().map(node_row).collect();
    let ready = nodes
        .iter()
        .filter(|n| n.state == NodeState::Ready as i32)
        .count();
    format!(
        "{}{} node(s), {} ready\n",
        render(&NODE_HEADERS, &rows),
        nodes.len(),
        ready
    )
}

/// The calibration table: measured beside published figures.
pub fn calibration(devices: &[Device], rows: &[CalibrationRow]) -> String {
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
    render(
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
