use switchyard_proto::v1::{DeviceTelemetry, NodeInfo, ResidentModel, Tops, TopsSource};

use super::*;

fn snapshot() -> Vec<NodeStatus> {
    let gpu = Device {
        id: "GPU-d0d4e774-6c7e-f842-1dde-a139ac847755".into(),
        kind: DeviceKind::NvidiaGpu as i32,
        vendor: "NVIDIA".into(),
        model: "NVIDIA H100 80GB HBM3".into(),
        memory_total_bytes: 85_000_000_000,
        memory_free_bytes: 84_000_000_000,
        tops: Some(Tops {
            int8_tops: 1979.0,
            source: TopsSource::Catalog as i32,
            detail: String::new(),
        }),
        telemetry: Some(DeviceTelemetry {
            utilization_ratio: Some(0.25),
            temperature_celsius: Some(46.0),
            power_watts: Some(114.0),
            ..Default::default()
        }),
        ..Default::default()
    };
    let cpu = Device {
        id: "cpu".into(),
        kind: DeviceKind::Cpu as i32,
        model: "Xeon \"Sapphire\" Rapids".into(),
        memory_total_bytes: 1000,
        health: DeviceHealth::Degraded as i32,
        backends: vec![
            switchyard_proto::v1::BackendSupport {
                backend: "openvino".into(),
                usable: true,
                ..Default::default()
            },
            switchyard_proto::v1::BackendSupport {
                backend: "llama_cpp".into(),
                usable: false,
                reason: "no llama-server".into(),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    vec![
        NodeStatus {
            info: Some(NodeInfo {
                node_name: "gpu-box".into(),
                devices: vec![gpu, cpu],
                resident_models: vec![ResidentModel {
                    model: "router".into(),
                    device_id: "cpu".into(),
                    backend: "openvino".into(),
                    precision: "f32".into(),
                    memory_bytes: 60_000_000,
                    pinned: true,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            state: NodeState::Ready as i32,
            last_heartbeat_age_ms: 1500,
            heartbeats_received: 42,
            ..Default::default()
        },
        NodeStatus {
            info: Some(NodeInfo {
                node_name: "edge".into(),
                ..Default::default()
            }),
            state: NodeState::Lost as i32,
            ..Default::default()
        },
    ]
}

#[test]
fn cluster_state_is_rendered_with_units_labels_and_the_dcgm_uuid() {
    let text = render_cluster(&snapshot());
    let uuid = "GPU-d0d4e774-6c7e-f842-1dde-a139ac847755";
    for line in [
        "switchyard_nodes{state=\"ready\"} 1".to_string(),
        "switchyard_nodes{state=\"lost\"} 1".to_string(),
        "switchyard_node_last_heartbeat_age_seconds{node=\"gpu-box\"} 1.5".to_string(),
        "switchyard_node_heartbeats_received_total{node=\"gpu-box\"} 42".to_string(),
        format!(
            "switchyard_device_temperature_celsius{{node=\"gpu-box\",device=\"{uuid}\",kind=\"nvidia_gpu\",UUID=\"{uuid}\"}} 46"
        ),
        format!(
            "switchyard_device_int8_tops{{node=\"gpu-box\",device=\"{uuid}\",kind=\"nvidia_gpu\",UUID=\"{uuid}\",source=\"catalog\"}} 1979"
        ),
        "switchyard_device_healthy{node=\"gpu-box\",device=\"cpu\",kind=\"cpu\"} 0".to_string(),
        "switchyard_device_backend_usable{node=\"gpu-box\",device=\"cpu\",kind=\"cpu\",backend=\"openvino\"} 1".to_string(),
        "switchyard_device_backend_usable{node=\"gpu-box\",device=\"cpu\",kind=\"cpu\",backend=\"llama_cpp\"} 0".to_string(),
        "switchyard_model_resident_bytes{node=\"gpu-box\",device=\"cpu\",kind=\"cpu\",model=\"router\",backend=\"openvino\",precision=\"f32\",pinned=\"true\"} 60000000".to_string(),
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
    }
    // Label values are escaped; the CPU has no UUID label and no absent telemetry series.
    assert!(
        text.contains("model=\"Xeon \\\"Sapphire\\\" Rapids\""),
        "{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l
                .starts_with("switchyard_device_power_watts{node=\"gpu-box\",device=\"cpu\"")),
        "{text}"
    );
    // Every family has HELP and TYPE once.
    let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
    assert_eq!(types, helps);
    assert_eq!(types, 14);
}

#[test]
fn an_attached_endpoint_is_labelled_by_its_engine_not_a_gpu_uuid() {
    let ep = Device {
        id: "endpoint:b".into(),
        kind: DeviceKind::NvidiaGpu as i32,
        engine: "ollama".into(),
        ..Default::default()
    };
    let labels = device_labels("a", &ep);
    assert!(labels.contains(&("engine", "ollama")), "{labels:?}");
    assert!(!labels.iter().any(|(k, _)| *k == "UUID"), "{labels:?}");
}
