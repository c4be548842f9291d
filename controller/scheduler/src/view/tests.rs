use super::*;

fn cpu(node: &str) -> NodeView {
    let mut d = DeviceView::new("cpu", DeviceType::Cpu);
    d.backends = vec!["ort-cpu".into(), "openvino".into()];
    d.memory_total_bytes = 1000;
    d.memory_free_bytes = 800;
    NodeView::new(node, vec![d])
}

#[test]
fn duplicate_nodes_and_devices_are_refused() {
    let err = ClusterView::new(vec![cpu("a"), cpu("a")]).unwrap_err();
    assert_eq!(err, ViewError::DuplicateNode("a".into()));
    let mut n = cpu("b");
    n.devices.push(n.devices[0].clone());
    let err = ClusterView::new(vec![n]).unwrap_err();
    assert!(matches!(err, ViewError::DuplicateDevice { .. }));
    assert!(err.to_string().contains("\"cpu\""));
}

#[test]
fn index_follows_incremental_updates() {
    let mut v = ClusterView::new(vec![cpu("a"), cpu("b")]).unwrap();
    assert_eq!(v.device_count(), 2);
    let bit = v.backend_bit("openvino").unwrap();
    assert!(v.hot()[1].backend_mask & bit != 0);

    assert!(v.update_device("b", "cpu", |d| {
        d.backends = vec!["ort-cpu".into()];
        d.in_flight = 3;
        d.resident_models = vec!["m".into()];
        d.id = "renamed".into();
    }));
    let h = &v.hot()[1];
    assert_eq!(h.backend_mask & bit, 0);
    assert_eq!(h.in_flight, 3);
    assert_eq!(&*h.resident, &[v.model_id("m").unwrap()]);
    assert!(v.device("b", "cpu").is_some(), "id is restored");

    assert!(v.set_node_ready("a", false));
    assert!(!v.hot()[0].node_ready);
    assert!(!v.set_node_ready("zz", false));

    // New node appended, then one removed: indexes stay consistent.
    v.upsert_node(cpu("c")).unwrap();
    assert_eq!(v.device_count(), 3);
    assert_eq!(v.remove_node("a").unwrap().name, "a");
    assert_eq!(v.device_count(), 2);
    for h in v.hot() {
        let (n, d) = v.resolve(h);
        assert_eq!(v.node(&n.name).unwrap().name, n.name);
        assert_eq!(d.id, "cpu");
    }
    assert!(v.hot().iter().all(|h| h.node_ready));
    assert!(v.set_node_ready("c", false));
    assert!(!v.hot()[1].node_ready);
    assert!(v.hot()[0].node_ready);

    // Replacing a node with more devices rebuilds the index.
    let mut b = cpu("b");
    b.devices
        .push(DeviceView::new("npu0", DeviceType::IntelNpu));
    v.upsert_node(b).unwrap();
    assert_eq!(v.device_count(), 3);
    assert_eq!(v.hot()[1].kind, DeviceType::IntelNpu);
    assert_eq!(v.hot()[1].max_concurrency, 1);
    assert_eq!(v.devices_of_kind(DeviceType::IntelNpu), &[1]);
    assert_eq!(v.devices_of_kind(DeviceType::Cpu), &[0, 2]);
    // A device whose kind changes moves between the per-kind lists.
    v.update_device("b", "npu0", |d| d.kind = DeviceType::Ncs2);
    assert!(v.devices_of_kind(DeviceType::IntelNpu).is_empty());
    assert_eq!(v.devices_of_kind(DeviceType::Ncs2), &[1]);
    v.upsert_node(cpu("d")).unwrap();
    assert_eq!(v.devices_of_kind(DeviceType::Cpu), &[0, 2, 3]);
}

#[test]
fn measured_tops_wins_when_valid() {
    let mut d = DeviceView::new("g", DeviceType::NvidiaGpu);
    d.tops = 284.0;
    assert_eq!(d.effective_tops(), (284.0, false));
    d.measured_tops = Some(150.0);
    assert_eq!(d.effective_tops(), (150.0, true));
    d.measured_tops = Some(f64::NAN);
    assert_eq!(d.effective_tops(), (284.0, false));
    d.tops = -1.0;
    assert_eq!(d.effective_tops(), (0.0, false));
}
