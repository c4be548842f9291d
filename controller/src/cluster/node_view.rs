//! What the scheduler sees of a node: its registration and latest heartbeat as a
//! [`NodeView`]. The only place inventory fields become placement inputs.

use switchyard_backend_core::{DeviceType, Precision};
use switchyard_proto::v1::{Device, DeviceHealth, NodeInfo, ResidentModel};
use switchyard_scheduler::view::{DeviceView, NodeView};

/// The placement view of a node (`ready` as given; in-flight counts start at 0 and are
/// carried over by the store).
pub fn node_view(info: &NodeInfo, ready: bool) -> NodeView {
    let devices = info
        .devices
        .iter()
        .map(|d| device_view(d, &info.resident_models))
        .collect();
    let mut node = NodeView::new(info.node_name.clone(), devices);
    node.ready = ready;
    // Agents report which registered models they have the files of.
    node.available_models = Some(info.available_models.clone());
    node
}

fn device_view(d: &Device, resident: &[ResidentModel]) -> DeviceView {
    let kind = DeviceType::from(d.kind());
    let mut v = DeviceView::new(d.id.clone(), kind);
    v.healthy = matches!(
        d.health(),
        DeviceHealth::Healthy | DeviceHealth::Unspecified
    );
    v.memory_total_bytes = d.memory_total_bytes;
    v.memory_free_bytes = d.memory_free_bytes;
    v.tops = d.tops.as_ref().map(|t| t.int8_tops).unwrap_or(0.0);
    v.measured_tops = d.measured_tops.as_ref().map(|t| t.int8_tops);
    v.backends = d
        .backends
        .iter()
        .filter(|b| b.usable)
        .map(|b| b.backend.clone())
        .collect();
    v.unusable_backends = d
        .backends
        .iter()
        .filter(|b| !b.usable)
        .map(|b| (b.backend.clone(), b.reason.clone()))
        .collect();
    v.engine_builds = d
        .backends
        .iter()
        .filter(|b| b.usable && !b.engine_build.is_empty())
        .map(|b| (b.backend.clone(), b.engine_build.clone()))
        .collect();
    // Precisions the agent probed per backend (an agent that reports none: f32 only).
    v.precisions = d
        .backends
        .iter()
        .filter(|b| b.usable && !b.precisions.is_empty())
        .map(|b| {
            let ps = b
                .precisions
                .iter()
                .filter_map(|p| p.parse::<Precision>().ok())
                .collect();
            (b.backend.clone(), ps)
        })
        .collect();
    // What the agent reports live moves the score (utilisation, heat, power).
    if let Some(t) = &d.telemetry {
        v.utilization = t.utilization_ratio;
        v.temperature_celsius = t.temperature_celsius;
        v.throttle_celsius = t.throttle_celsius;
        v.power_watts = t.power_watts;
        v.power_limit_watts = t.power_limit_watts;
    }
    // NPUs and NCS2 sticks serve one request at a time: a busy one is skipped for another
    // device. CPUs and GPUs take any number of requests — the agent's batcher merges them
    // and its bounded queue sheds overload.
    v.max_concurrency = if matches!(kind, DeviceType::IntelNpu | DeviceType::Ncs2) {
        d.max_concurrency.max(1)
    } else {
        0
    };
    let here = resident.iter().filter(|r| r.device_id == d.id);
    v.resident_models = here.clone().map(|r| r.model.clone()).collect();
    // The agent's queue depth: requests in flight on the device's resident models.
    v.queue_depth = here.clone().map(|r| r.in_flight).sum();
    // The agent evicts idle, unpinned models (LRU) to make room.
    v.reclaimable_bytes = here
        .filter(|r| r.in_flight == 0 && !r.pinned)
        .map(|r| r.memory_bytes)
        .sum();
    v.simulated = d.simulated;
    // An attached engine serves exactly the models it lists.
    if !d.engine.is_empty() {
        v.engine_models = Some(d.models.clone());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_proto::v1::{BackendSupport, DeviceKind, DeviceTelemetry};

    #[test]
    fn inventory_becomes_placement_inputs() {
        let info = NodeInfo {
            node_name: "n".into(),
            devices: vec![
                Device {
                    id: "npu0".into(),
                    kind: DeviceKind::IntelNpu as i32,
                    health: DeviceHealth::Unavailable as i32,
                    memory_free_bytes: 7,
                    backends: vec![
                        BackendSupport {
                            backend: "openvino".into(),
                            usable: true,
                            precisions: vec!["f16".into()],
                            ..Default::default()
                        },
                        BackendSupport {
                            backend: "ort".into(),
                            usable: false,
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                },
                Device {
                    id: "cpu".into(),
                    kind: DeviceKind::Cpu as i32,
                    telemetry: Some(DeviceTelemetry {
                        device_id: "cpu".into(),
                        utilization_ratio: Some(0.4),
                        temperature_celsius: Some(70.0),
                        throttle_celsius: Some(95.0),
                        power_watts: Some(30.0),
                        power_limit_watts: Some(65.0),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ],
            resident_models: vec![
                ResidentModel {
                    model: "idle".into(),
                    device_id: "cpu".into(),
                    memory_bytes: 10,
                    ..Default::default()
                },
                ResidentModel {
                    model: "busy".into(),
                    device_id: "cpu".into(),
                    memory_bytes: 20,
                    in_flight: 1,
                    ..Default::default()
                },
            ],
            available_models: vec!["idle".into()],
            ..Default::default()
        };
        let v = node_view(&info, true);
        assert!(v.ready);
        assert_eq!(
            v.available_models.as_deref(),
            Some(&["idle".to_string()][..])
        );
        let npu = &v.devices[0];
        assert_eq!(npu.kind, DeviceType::IntelNpu);
        assert!(!npu.healthy);
        assert_eq!(npu.max_concurrency, 1);
        assert_eq!(npu.backends, vec!["openvino".to_string()]);
        assert_eq!(
            npu.precisions,
            vec![("openvino".to_string(), vec![Precision::F16])]
        );
        assert!(!npu.backend_computes_at("openvino", Precision::F32));
        let cpu = &v.devices[1];
        assert!(cpu.healthy, "unspecified health counts as healthy");
        assert_eq!(cpu.max_concurrency, 0);
        assert_eq!(cpu.resident_models.len(), 2);
        assert_eq!(
            cpu.reclaimable_bytes, 10,
            "only idle, unpinned models are reclaimable"
        );
        assert_eq!(cpu.queue_depth, 1, "the agent's in-flight counts");
        assert_eq!(cpu.utilization, Some(0.4));
        assert_eq!(cpu.temperature_celsius, Some(70.0));
        assert_eq!(cpu.throttle_celsius, Some(95.0));
        assert_eq!(cpu.power_watts, Some(30.0));
        assert_eq!(cpu.power_limit_watts, Some(65.0));
    }
}
