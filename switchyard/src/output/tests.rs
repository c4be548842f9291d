use switchyard_proto::v1::{
    BackendSupport, Device, DeviceKind, NodeInfo, NodeState, NodeStatus, Tops, TopsSource,
};

use super::{json, table};

#[test]
fn columns_align() {
    let t = table::render(
        &["A", "LONGER"],
        &[
            vec!["xyz".into(), "1".into()],
            vec!["q".into(), "22".into()],
        ],
    );
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines[0], "A    LONGER");
    assert_eq!(lines[1], "xyz  1");
    assert_eq!(lines[2], "q    22");
    assert_eq!(table::gib(3 << 30), "3.0");
}

fn gpu() -> Device {
    Device {
        id: "GPU-1".into(),
        kind: DeviceKind::NvidiaGpu as i32,
        model: "NVIDIA GeForce RTX 5090".into(),
        memory_total_bytes: 32 << 30,
        memory_free_bytes: 30 << 30,
        tops: Some(Tops {
            int8_tops: 838.0,
            source: TopsSource::Catalog as i32,
            detail: "spec sheet".into(),
        }),
        measured_tops: Some(Tops {
            int8_tops: 700.0,
            source: TopsSource::Measured as i32,
            detail: "matmul".into(),
        }),
        backends: vec![
            BackendSupport {
                backend: "ort".into(),
                usable: true,
                reason: String::new(),
                precisions: vec!["f32".into()],
                ..Default::default()
            },
            BackendSupport {
                backend: "openvino".into(),
                usable: false,
                reason: "no such device".into(),
                precisions: vec![],
                ..Default::default()
            },
        ],
        attributes: [("b".to_string(), "2".to_string()), ("a".into(), "1".into())].into(),
        ..Default::default()
    }
}

fn node(devices: Vec<Device>) -> NodeStatus {
    NodeStatus {
        node_id: "id-1".into(),
        state: NodeState::Ready as i32,
        last_heartbeat_age_ms: 1500,
        info: Some(NodeInfo {
            node_name: "n1".into(),
            agent_endpoint: "http://127.0.0.1:1".into(),
            devices,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn devices_and_status_share_one_device_shape_with_proto_key_names() {
    let listed = json::devices(&[("n1".into(), vec![gpu()])]);
    let d = &listed[0];
    assert_eq!(d["node"], "n1");
    assert_eq!(d["kind"], "nvidia_gpu");
    assert_eq!(d["tops"]["int8_tops"], 838.0);
    assert_eq!(d["tops"]["source"], "catalog");
    assert_eq!(d["measured_tops"]["int8_tops"], 700.0);
    assert!(d["tops"].get("int8").is_none(), "{d}");
    assert_eq!(d["backends"][1]["usable"], false);
    assert_eq!(d["backends"][1]["reason"], "no such device");
    assert_eq!(d["backends"][0]["precisions"][0], "f32");
    assert_eq!(d["attributes"]["a"], "1");
    assert!(d["telemetry"].is_null());

    let status = json::nodes(&[node(vec![gpu()])]);
    let nested = &status[0]["devices"][0];
    assert_eq!(status[0]["name"], "n1");
    assert_eq!(status[0]["state"], "ready");
    let mut without_node = d.clone();
    without_node.as_object_mut().unwrap().remove("node");
    assert_eq!(nested, &without_node, "status nests the same device shape");
}

#[test]
fn device_and_node_rows_fill_every_column() {
    let row = table::device_row("n1", &gpu());
    assert_eq!(row.len(), table::DEVICE_HEADERS.len());
    assert_eq!(row[4], "2.0/32.0");
    assert_eq!(row[5], "700.0 (measured) / 838.0");
    assert_eq!(row[6], "catalog");
    assert_eq!(row[7], "ort(f32)", "usable backends with their precisions");
    let mut with_engine = gpu();
    with_engine.backends.push(BackendSupport {
        backend: "llama_cpp".into(),
        usable: true,
        engine_build: "CUDA build".into(),
        ..Default::default()
    });
    assert_eq!(
        table::device_row("n1", &with_engine)[7],
        "ort(f32),llama_cpp(CUDA build)",
        "an engine with the build that serves the device"
    );
    assert_eq!(
        json::device(&with_engine)["backends"][2]["engine_build"],
        "CUDA build"
    );

    let mut sim = gpu();
    sim.simulated = true;
    sim.measured_tops = None;
    let status = table::nodes(&[node(vec![gpu(), sim])]);
    let lines: Vec<&str> = status.lines().collect();
    assert!(lines[0].starts_with("NODE"), "{status}");
    for cell in [
        "n1",
        "ready",
        "1.5s ago",
        "2 (nvidia_gpu,nvidia_gpu*)",
        "4.0/64.0",
        "1538.0",
    ] {
        assert!(lines[1].contains(cell), "{cell}: {status}");
    }
    assert_eq!(lines[2], "1 node(s), 1 ready");
}
