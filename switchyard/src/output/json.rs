//! JSON for scripts (the protocol types carry no serde derives). Keys are the protobuf field
//! names; enums are their short names. One device shape, used by `devices` (with a `node`
//! key) and by `status` (nested under each node):
//!
//! `{id, kind, vendor, model, memory_total_bytes, memory_free_bytes,
//!   tops: {int8_tops, source, detail} | null, measured_tops: {int8_tops, source, detail} | null,
//!   backends: [{backend, usable, reason, precisions}], health, health_reason, simulated, max_concurrency,
//!   attributes: {..}, telemetry: {device_id, memory_free_bytes, utilization_ratio,
//!   temperature_celsius, power_watts, health} | null, engine, models}` — `engine`
//!   (`ollama`, `openai`) and `models` are set for an attached endpoint's pseudo-device.

use serde_json::{Map, Value, json};
use switchyard_proto::v1::{Device, DeviceHealth, DeviceTelemetry, NodeState, NodeStatus, Tops};

use super::kind_name;

fn tops(t: &Tops) -> Value {
    json!({"int8_tops": t.int8_tops, "source": t.source().short_name(), "detail": t.detail})
}

fn health(raw: i32) -> &'static str {
    DeviceHealth::try_from(raw)
        .unwrap_or(DeviceHealth::Unspecified)
        .short_name()
}

fn telemetry(t: &DeviceTelemetry) -> Value {
    json!({
        "device_id": t.device_id,
        "memory_free_bytes": t.memory_free_bytes,
        "utilization_ratio": t.utilization_ratio,
        "temperature_celsius": t.temperature_celsius,
        "power_watts": t.power_watts,
        "health": health(t.health),
    })
}

/// A device as JSON (the one shape; see the module docs).
pub fn device(d: &Device) -> Value {
    let mut attributes: Vec<(&String, &String)> = d.attributes.iter().collect();
    attributes.sort();
    let attributes: Map<String, Value> = attributes
        .into_iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "id": d.id,
        "kind": kind_name(d),
        "vendor": d.vendor,
        "model": d.model,
        "memory_total_bytes": d.memory_total_bytes,
        "memory_free_bytes": d.memory_free_bytes,
        "tops": d.tops.as_ref().map(tops),
        "measured_tops": d.measured_tops.as_ref().map(tops),
        "backends": d.backends.iter().map(|b| json!({"backend": b.backend, "usable": b.usable, "reason": b.reason, "precisions": b.precisions, "engine_build": Some(&b.engine_build).filter(|e| !e.is_empty())})).collect::<Vec<_>>(),
        "health": health(d.health),
        "health_reason": d.health_reason,
        "simulated": d.simulated,
        "max_concurrency": d.max_concurrency,
        "attributes": attributes,
        "telemetry": d.telemetry.as_ref().map(telemetry),
        "engine": d.engine,
        "models": d.models,
    })
}

/// `devices --output json`: every device of every node, each with its `node`.
pub fn devices(per_node: &[(String, Vec<Device>)]) -> Value {
    Value::Array(
        per_node
            .iter()
            .flat_map(|(node, devs)| {
                devs.iter().map(move |d| {
                    let mut v = device(d);
                    v["node"] = json!(node);
                    v
                })
            })
            .collect(),
    )
}

/// `status --output json`: every node with its devices and resident models.
pub fn nodes(nodes: &[NodeStatus]) -> Value {
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
                    "devices": info.devices.iter().map(device).collect::<Vec<_>>(),
                    "resident_models": info.resident_models.iter().map(|r| json!({"model": r.model, "device_id": r.device_id, "backend": r.backend, "precision": r.precision, "memory_bytes": r.memory_bytes, "in_flight": r.in_flight, "pinned": r.pinned, "idle_ms": r.idle_ms, "load_ms": r.load_ms, "streams": r.streams})).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}
