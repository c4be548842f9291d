use super::*;
use crate::level_zero::{ZE_DEVICE_TYPE_GPU, ZeDevice};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/discovery")
        .join(name)
}

/// The agent keeps one `Discovery` across async tasks.
#[test]
fn discovery_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Discovery>();
}

/// Level Zero answers (as a real Arc + NPU machine would give them) merged with the
/// captured sysfs tree: the Arc takes the L0 UUID and memory, a device L0 lists without
/// a sysfs entry is kept.
#[test]
fn fixture_level_zero_merge_with_sysfs() {
    let mut d = Discovery::new(DiscoveryConfig::fixture(fixture("arc-npu-ncs2")));
    let arc = ZeDevice::for_test(
        ZE_DEVICE_TYPE_GPU,
        0x56a0,
        "Intel(R) Arc(TM) A770 Graphics",
        Some("8680a056-0800-0000-0300-000000000001"),
        Some("0000:03:00.0"),
        16_225_243_136,
        false,
    );
    let npu = ZeDevice::for_test(
        ZE_DEVICE_TYPE_VPU,
        0x643e,
        "Intel(R) AI Boost",
        Some("80863e64-0000-0000-0000-000000000000"),
        None,
        0,
        true,
    );
    let mut inv = Inventory::default();
    d.merge_intel(&mut inv, vec![arc, npu], Some((32 << 30, 16 << 30)));
    let ids: Vec<(&str, &str, u64)> = inv
        .devices
        .iter()
        .map(|x| (x.id.as_str(), x.model.as_str(), x.memory_total_bytes))
        .collect();
    assert_eq!(
        ids,
        vec![
            (
                "8680a056-0800-0000-0300-000000000001",
                "Intel Arc A770",
                16_225_243_136
            ),
            (
                "pci-0000:00:0b.0",
                "Intel AI Boost NPU (Meteor Lake)",
                32 << 30
            ),
            (
                "80863e64-0000-0000-0000-000000000000",
                "Intel AI Boost NPU (Lunar Lake)",
                32 << 30
            ),
        ]
    );
    let a = &inv.devices[0];
    assert_eq!(a.attributes["memory_source"], "level_zero");
    assert_eq!(a.attributes["pci_bus_id"], "0000:03:00.0");
    assert_eq!(
        a.attributes["level_zero_name"],
        "Intel(R) Arc(TM) A770 Graphics"
    );
    assert_eq!(inv.devices[2].kind, DeviceKind::IntelNpu as i32);
    assert_eq!(inv.devices[2].tops.as_ref().unwrap().int8_tops, 48.0);
    assert_eq!(inv.devices[2].max_concurrency, 1);
}
