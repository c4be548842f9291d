//! Discovery on the machine the tests run on.

use switchyard_discovery::{Discovery, DiscoveryConfig, render_table};
use switchyard_proto::v1::{DeviceKind, TopsSource};

#[test]
fn live_host_finds_the_cpu_without_errors() {
    let mut d = Discovery::new(DiscoveryConfig::host());
    let inv = d.scan();
    let cpu = inv.device("cpu").expect("the CPU is always a device");
    assert_eq!(cpu.kind, DeviceKind::Cpu as i32);
    assert!(!cpu.model.is_empty());
    assert!(cpu.memory_total_bytes > 0);
    assert!(cpu.memory_free_bytes > 0 && cpu.memory_free_bytes <= cpu.memory_total_bytes);
    assert!(cpu.max_concurrency >= 1);
    assert!(!cpu.simulated);
    let tops = cpu.tops.as_ref().expect("tops");
    match TopsSource::try_from(tops.source).unwrap() {
        TopsSource::Catalog => assert!(tops.int8_tops > 0.0, "{tops:?}"),
        TopsSource::Unknown => assert!(!tops.detail.is_empty(), "unknown needs a reason"),
        other => panic!("unexpected source {other:?}"),
    }
    assert!(inv.host.cpu_cores >= 1);
    assert!(inv.host.memory_total_bytes > 0);
    assert!(!inv.host.kernel.is_empty());
    assert!(!inv.host.virtualization.is_empty());
    assert!(inv.warnings().is_empty(), "{:?}", inv.notes);
    let t = d.telemetry(&inv);
    assert_eq!(t.len(), inv.devices.len());
    assert!(t[0].memory_free_bytes > 0);
    println!("{}", render_table(&inv));
}

/// This CI host has no accelerators: discovery must say so quietly.
#[test]
fn live_host_without_accelerators_reports_none() {
    if std::path::Path::new("/dev/nvidia0").exists() || std::path::Path::new("/dev/dri").exists() {
        eprintln!("skipping: this machine has GPU device nodes");
        return;
    }
    let inv = Discovery::new(DiscoveryConfig::host()).scan();
    for kind in [
        DeviceKind::NvidiaGpu,
        DeviceKind::IntelGpu,
        DeviceKind::IntelNpu,
    ] {
        assert!(inv.of_kind(kind).is_empty(), "{kind:?}: {:?}", inv.devices);
    }
    assert!(inv.warnings().is_empty(), "{:?}", inv.notes);
}

#[test]
#[ignore = "needs NVIDIA GPU"]
fn live_nvidia_inventory() {
    let mut d = Discovery::new(DiscoveryConfig::host());
    let inv = d.scan();
    println!("{}", render_table(&inv));
    let gpus = inv.of_kind(DeviceKind::NvidiaGpu);
    assert!(!gpus.is_empty(), "no NVIDIA GPU found: {:?}", inv.notes);
    for g in &gpus {
        assert!(g.id.starts_with("GPU-"), "{}", g.id);
        assert!(g.memory_total_bytes > 0);
        assert!(g.memory_free_bytes <= g.memory_total_bytes);
        assert!(!g.attributes["driver_version"].is_empty());
        assert!(!g.attributes["pci_bus_id"].is_empty());
    }
    let live = d.telemetry(&inv);
    for (dev, t) in inv.devices.iter().zip(&live) {
        if dev.kind == DeviceKind::NvidiaGpu as i32 {
            assert!(t.memory_free_bytes > 0);
            assert!(t.temperature_celsius.is_some_and(|c| c > 0.0 && c < 120.0));
        }
    }
}

#[test]
#[ignore = "needs Intel GPU"]
fn live_intel_gpu_inventory() {
    let inv = Discovery::new(DiscoveryConfig::host()).scan();
    println!("{}", render_table(&inv));
    let gpus = inv.of_kind(DeviceKind::IntelGpu);
    assert!(!gpus.is_empty(), "no Intel GPU found: {:?}", inv.notes);
    for g in gpus {
        assert!(!g.model.is_empty());
        assert!(g.attributes.contains_key("pci_device_id"));
    }
}
