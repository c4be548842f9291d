//! JSON rendering of an [`Inventory`] (the protocol types carry no serde derives).

use serde_json::{Map, Value, json};
use switchyard_proto::v1::{
    Device, DeviceHealth, DeviceKind, DeviceTelemetry, HostFacts, Tops, TopsSource,
};

use crate::Inventory;

fn tops(t: &Tops) -> Value {
    json!({
        "int8_tops": t.int8_tops,
        "source": TopsSource::try_from(t.source).unwrap_or(TopsSource::Unknown).short_name(),
        "detail": t.detail,
    })
}

fn health(h: i32) -> &'static str {
    DeviceHealth::try_from(h)
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

fn device(d: &Device) -> Value {
    let mut attrs: Vec<(&String, &String)> = d.attributes.iter().collect();
    attrs.sort();
    let attrs: Map<String, Value> = attrs
        .into_iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "id": d.id,
        "kind": DeviceKind::try_from(d.kind).unwrap_or(DeviceKind::Unspecified).short_name(),
        "vendor": d.vendor,
        "model": d.model,
        "memory_total_bytes": d.memory_total_bytes,
        "memory_free_bytes": d.memory_free_bytes,
        "tops": d.tops.as_ref().map(tops),
        "measured_tops": d.measured_tops.as_ref().map(tops),
        "health": health(d.health),
        "health_reason": d.health_reason,
        "simulated": d.simulated,
        "max_concurrency": d.max_concurrency,
        "attributes": attrs,
        "telemetry": d.telemetry.as_ref().map(telemetry),
    })
}

fn host(h: &HostFacts) -> Value {
    json!({
        "hostname": h.hostname,
        "os": h.os,
        "kernel": h.kernel,
        "cpu_model": h.cpu_model,
        "cpu_cores": h.cpu_cores,
        "memory_total_bytes": h.memory_total_bytes,
        "virtualization": h.virtualization,
        "container": h.container,
    })
}

/// The inventory as a JSON value: `{host, devices, notes}` with enum short names.
pub fn to_json(inv: &Inventory) -> Value {
    json!({
        "host": host(&inv.host),
        "devices": inv.devices.iter().map(device).collect::<Vec<_>>(),
        "notes": inv.notes,
    })
}
