//! Discovery on captured sysfs/procfs/USB trees under `tests/fixtures/discovery/` (and a
//! recorded NVML snapshot), through the same code as the live host.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use switchyard_discovery::{Discovery, DiscoveryConfig, Inventory, render_table, to_json};
use switchyard_proto::v1::{DeviceHealth, DeviceKind, TopsSource};

const GIB: u64 = 1 << 30;

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/discovery")
        .join(name)
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dst = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &dst)?;
        } else {
            std::fs::copy(e.path(), &dst)?;
        }
    }
    Ok(())
}

/// A private copy of a fixture (tests chmod and rewrite files in it).
fn fixture_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&fixture_dir(name), dir.path()).expect("copy fixture");
    dir
}

/// (id, kind, model, memory_total_bytes, int8 TOPS, TOPS source) of every device.
fn summary(inv: &Inventory) -> Vec<(String, &'static str, String, u64, f64, &'static str)> {
    inv.devices
        .iter()
        .map(|d| {
            let t = d.tops.clone().unwrap_or_default();
            (
                d.id.clone(),
                DeviceKind::try_from(d.kind).unwrap().short_name(),
                d.model.clone(),
                d.memory_total_bytes,
                t.int8_tops,
                TopsSource::try_from(t.source).unwrap().short_name(),
            )
        })
        .collect()
}

fn s(x: &str) -> String {
    x.to_string()
}

#[test]
fn fixture_arc_npu_ncs2_exact_inventory() {
    let dir = fixture_copy("arc-npu-ncs2");
    let mut disc = Discovery::new(DiscoveryConfig::fixture(dir.path()));
    let inv = disc.scan();
    let host_mem = 32_617_264 * 1024;
    assert_eq!(
        summary(&inv),
        vec![
            (
                s("cpu"),
                "cpu",
                s("Intel(R) Core(TM) Ultra 7 155H"),
                host_mem,
                2.867,
                "catalog"
            ),
            (
                s("pci-0000:03:00.0"),
                "intel_gpu",
                s("Intel Arc A770"),
                16 * GIB,
                262.0,
                "catalog"
            ),
            (
                s("pci-0000:00:0b.0"),
                "intel_npu",
                s("Intel AI Boost NPU (Meteor Lake)"),
                host_mem,
                11.0,
                "catalog"
            ),
            (
                s("usb-3-2"),
                "ncs2",
                s("Intel Neural Compute Stick 2 (Myriad X)"),
                512 << 20,
                1.0,
                "catalog"
            ),
        ]
    );
    // Host facts.
    assert_eq!(inv.host.hostname, "edge-arc");
    assert_eq!(inv.host.os, "Ubuntu 24.04.1 LTS");
    assert_eq!(inv.host.cpu_cores, 22);
    assert_eq!(inv.host.memory_total_bytes, host_mem);
    assert_eq!(inv.host.virtualization, "bare-metal");
    assert_eq!(inv.host.container, "");

    let cpu = inv.device("cpu").unwrap();
    assert_eq!(cpu.attributes["physical_cores"], "16");
    assert_eq!(cpu.attributes["int8_isa"], "avx_vnni,avx2");
    assert_eq!(cpu.max_concurrency, 11);
    assert!(
        cpu.tops
            .as_ref()
            .unwrap()
            .detail
            .contains("16 cores x 1.400 GHz")
    );
    assert_eq!(cpu.memory_free_bytes, 28_000_000 * 1024);

    let arc = inv.device("pci-0000:03:00.0").unwrap();
    assert_eq!(arc.attributes["driver"], "i915");
    assert_eq!(arc.attributes["node"], "/dev/dri/renderD128");
    assert_eq!(arc.attributes["memory_source"], "catalog");
    assert_eq!(arc.health, DeviceHealth::Healthy as i32);
    assert_eq!(arc.max_concurrency, 4);

    let npu = inv.device("pci-0000:00:0b.0").unwrap();
    assert_eq!(npu.attributes["driver"], "intel_vpu");
    assert_eq!(npu.attributes["node"], "/dev/accel/accel0");
    assert_eq!(npu.max_concurrency, 1);

    let stick = inv.device("usb-3-2").unwrap();
    assert_eq!(stick.max_concurrency, 1);
    assert_eq!(stick.attributes["firmware"], "unbooted");
    assert_eq!(stick.attributes["usb_id"], "03e7:2485");
    assert_eq!(stick.health, DeviceHealth::Degraded as i32);
    assert!(stick.health_reason.contains("OpenVINO 2022.3 MYRIAD"));
    assert_eq!(
        inv.notes,
        vec!["warn: NCS2 needs OpenVINO 2022.3 (not found)"]
    );

    assert!(inv.devices.iter().all(|d| d.simulated));
    assert!(inv.devices.iter().all(|d| d.backends.is_empty()));
}

#[test]
fn fixture_ncs2_reenumeration_keeps_one_device_with_the_same_id() {
    let dir = fixture_copy("arc-npu-ncs2");
    let mut disc = Discovery::new(DiscoveryConfig::fixture(dir.path()));
    let before = disc.scan();
    assert_eq!(before.of_kind(DeviceKind::Ncs2).len(), 1);

    // Firmware boot: the stick re-enumerates on the same port as 03e7:f63b, new devnum.
    let usb = dir.path().join("sys/bus/usb/devices/3-2");
    std::fs::write(usb.join("idProduct"), "f63b\n").unwrap();
    std::fs::write(usb.join("devnum"), "6\n").unwrap();
    std::fs::rename(
        dir.path().join("dev/bus/usb/003/005"),
        dir.path().join("dev/bus/usb/003/006"),
    )
    .unwrap();
    // The MYRIAD runtime gets installed meanwhile.
    let lib = dir
        .path()
        .join("opt/intel/openvino_2022.3.1/runtime/lib/intel64");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("libmyriadPlugin.so"), b"").unwrap();

    let after = disc.scan();
    let sticks = after.of_kind(DeviceKind::Ncs2);
    assert_eq!(sticks.len(), 1, "{}", render_table(&after));
    let stick = sticks[0];
    assert_eq!(stick.id, "usb-3-2");
    assert_eq!(stick.attributes["firmware"], "booted");
    assert_eq!(stick.attributes["usb_id"], "03e7:f63b");
    assert_eq!(stick.attributes["node"], "/dev/bus/usb/003/006");
    assert_eq!(
        stick.health,
        DeviceHealth::Healthy as i32,
        "{}",
        stick.health_reason
    );
    assert!(after.warnings().is_empty(), "{:?}", after.notes);
    assert_eq!(after.devices.len(), before.devices.len());
}

#[test]
fn fixture_unreadable_render_node_degrades_the_gpu_with_the_fix() {
    let dir = fixture_copy("arc-npu-ncs2");
    let node = dir.path().join("dev/dri/renderD128");
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o000)).unwrap();
    let inv = Discovery::new(DiscoveryConfig::fixture(dir.path())).scan();
    let arc = inv.device("pci-0000:03:00.0").unwrap();
    assert_eq!(arc.health, DeviceHealth::Degraded as i32);
    assert!(
        arc.health_reason
            .starts_with("/dev/dri/renderD128 is not accessible (permission denied)"),
        "{}",
        arc.health_reason
    );
    assert!(
        arc.health_reason
            .contains("add the agent user to the `render` group"),
        "{}",
        arc.health_reason
    );
    // The NPU node is untouched and stays healthy.
    assert_eq!(
        inv.device("pci-0000:00:0b.0").unwrap().health,
        DeviceHealth::Healthy as i32
    );
    assert!(render_table(&inv).contains("degraded"));
}

#[test]
fn fixture_arc_npu_telemetry_deltas() {
    let dir = fixture_copy("arc-npu-ncs2");
    let mut disc = Discovery::new(DiscoveryConfig::fixture(dir.path()));
    let inv = disc.scan();
    // Counters advance: CPU 50 busy of 100 jiffies, NPU busy time, GPU energy.
    std::fs::write(
        dir.path().join("proc/stat"),
        "cpu  100040 500 30010 800050 2000 0 1000 0 0 0\n",
    )
    .unwrap();
    std::fs::write(
        dir.path()
            .join("sys/class/accel/accel0/device/npu_busy_time_us"),
        "5000001\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("proc/meminfo"),
        "MemTotal:       32617264 kB\nMemAvailable:   27000000 kB\n",
    )
    .unwrap();
    let live = disc.telemetry(&inv);
    assert_eq!(live.len(), inv.devices.len());
    let cpu = &live[0];
    assert_eq!(cpu.device_id, "cpu");
    assert_eq!(cpu.utilization_ratio, Some(0.5));
    assert_eq!(cpu.memory_free_bytes, 27_000_000 * 1024);
    let npu = live
        .iter()
        .find(|t| t.device_id == "pci-0000:00:0b.0")
        .unwrap();
    let util = npu.utilization_ratio.expect("npu busy delta");
    assert!((0.0..=1.0).contains(&util), "{util}");
    assert_eq!(npu.memory_free_bytes, 27_000_000 * 1024);
    let stick = live.iter().find(|t| t.device_id == "usb-3-2").unwrap();
    assert_eq!(stick.health, DeviceHealth::Degraded as i32);
}

#[test]
fn fixture_two_nvidia_from_recorded_nvml() {
    let dir = fixture_dir("two-nvidia");
    let mut disc = Discovery::new(DiscoveryConfig::fixture(&dir));
    let inv = disc.scan();
    assert_eq!(
        summary(&inv),
        vec![
            (
                s("cpu"),
                "cpu",
                s("AMD Ryzen 9 7950X 16-Core Processor"),
                65_536_000 * 1024,
                18.432,
                "catalog"
            ),
            (
                s("GPU-5a0c2e1b-8f7d-4c3e-9b1a-2d6f4e8c0a17"),
                "nvidia_gpu",
                s("NVIDIA GeForce RTX 4070 SUPER"),
                12_878_610_432,
                284.0,
                "catalog"
            ),
            (
                s("GPU-d3b7a9f2-61c4-4e08-b5a3-7c19e2f4d6b8"),
                "nvidia_gpu",
                s("NVIDIA GeForce RTX 5090"),
                34_190_917_632,
                838.0,
                "catalog"
            ),
        ]
    );
    assert!(inv.notes.is_empty(), "{:?}", inv.notes);
    assert_eq!(inv.host.virtualization, "bare-metal");
    let g0 = &inv.devices[1];
    assert_eq!(g0.vendor, "NVIDIA");
    assert_eq!(g0.memory_free_bytes, 12_026_511_360);
    assert_eq!(g0.attributes["pci_bus_id"], "00000000:01:00.0");
    assert_eq!(g0.attributes["driver_version"], "570.124.04");
    assert_eq!(g0.attributes["compute_capability"], "8.9");
    assert_eq!(g0.attributes["cuda_driver_version"], "12.8");
    assert_eq!(g0.max_concurrency, 4);
    assert!(g0.tops.as_ref().unwrap().detail.contains("sparse"));
    let cpu = inv.device("cpu").unwrap();
    assert_eq!(cpu.attributes["int8_isa"], "avx512_vnni,avx512bw,avx2");

    let live = disc.telemetry(&inv);
    let g1 = &live[2];
    assert_eq!(g1.device_id, "GPU-d3b7a9f2-61c4-4e08-b5a3-7c19e2f4d6b8");
    assert_eq!(g1.memory_free_bytes, 21_474_836_480);
    assert_eq!(g1.utilization_ratio, Some(0.87));
    assert_eq!(g1.temperature_celsius, Some(66.0));
    assert_eq!(g1.power_watts, Some(472.35));
    assert_eq!(live[0].temperature_celsius, Some(48.25));

    let json = to_json(&inv);
    assert_eq!(json["devices"][2]["kind"], "nvidia_gpu");
    assert_eq!(json["devices"][2]["tops"]["source"], "catalog");
    assert_eq!(json["devices"][2]["telemetry"]["utilization_ratio"], 0.87);
}

#[test]
fn fixture_cuda_ordinals_follow_pci_bus_order_not_the_nvml_listing() {
    // The two-nvidia host tree with the three-GPU NVML recording of nvidia-pci-order.
    let dir = fixture_copy("two-nvidia");
    std::fs::copy(
        fixture_dir("nvidia-pci-order").join("nvml.json"),
        dir.path().join("nvml.json"),
    )
    .unwrap();
    let inv = Discovery::new(DiscoveryConfig::fixture(dir.path())).scan();
    let ordinal = |id: &str| {
        let d = inv
            .device(id)
            .unwrap_or_else(|| panic!("{id}: {}", render_table(&inv)));
        (
            d.attributes["pci_bus_id"].clone(),
            d.attributes[switchyard_proto::attributes::CUDA_ORDINAL].clone(),
        )
    };
    // Listed 0000:81, 0001:01, 0000:02; CUDA (PCI_BUS_ID) numbers them 1, 2, 0.
    assert_eq!(
        ordinal("GPU-aa000000-0000-4000-8000-000000000081"),
        (s("00000000:81:00.0"), s("1"))
    );
    assert_eq!(
        ordinal("GPU-bb000000-0000-4000-8000-000000010001"),
        (s("00000001:01:00.0"), s("2")),
        "a second PCI domain sorts after the first"
    );
    assert_eq!(
        ordinal("GPU-cc000000-0000-4000-8000-000000000002"),
        (s("00000000:02:00.0"), s("0"))
    );
    // The recorded two-GPU host: listing and bus order agree.
    let inv = Discovery::new(DiscoveryConfig::fixture(fixture_dir("two-nvidia"))).scan();
    assert_eq!(inv.devices[1].attributes["cuda_ordinal"], "0");
    assert_eq!(inv.devices[2].attributes["cuda_ordinal"], "1");
}

#[test]
fn fixture_broken_nvml_json_is_an_error_note_not_a_panic() {
    let dir = fixture_copy("two-nvidia");
    std::fs::write(dir.path().join("nvml.json"), "{\"driver_version\": 5}").unwrap();
    let inv = Discovery::new(DiscoveryConfig::fixture(dir.path())).scan();
    assert_eq!(inv.of_kind(DeviceKind::NvidiaGpu).len(), 0);
    let w = inv.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].starts_with("error: invalid fixture"), "{}", w[0]);
    assert!(inv.device("cpu").is_some());
}

#[test]
fn fixture_lxc_dri_without_pci_tree() {
    let dir = fixture_copy("lxc-dri-no-pci");
    let inv = Discovery::new(DiscoveryConfig::fixture(dir.path())).scan();
    assert_eq!(
        summary(&inv),
        vec![(
            s("cpu"),
            "cpu",
            s("Intel(R) Core(TM) i5-9500 CPU @ 3.00GHz"),
            8 * GIB,
            0.768,
            "catalog"
        )]
    );
    assert_eq!(inv.host.container, "lxc");
    assert_eq!(inv.host.hostname, "ct-infer-101");
    assert_eq!(inv.host.cpu_cores, 4);
    assert_eq!(inv.notes.len(), 2, "{:?}", inv.notes);
    assert_eq!(inv.notes[0], "info: running in an LXC container");
    assert!(
        inv.notes[1].starts_with(
            "warn: /dev/dri/renderD128 exists but sysfs shows no PCI device behind it"
        ),
        "{}",
        inv.notes[1]
    );

    // Same container, node not accessible to the agent: the note carries the fix.
    std::fs::set_permissions(
        dir.path().join("dev/dri/renderD128"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let inv = Discovery::new(DiscoveryConfig::fixture(dir.path())).scan();
    assert!(
        inv.notes[1].contains("permission denied") && inv.notes[1].contains("`render` group"),
        "{}",
        inv.notes[1]
    );
}

/// NVML answers recorded on a real H100 with `--example inventory -- --record-nvml`.
#[test]
fn fixture_h100_recorded_from_real_nvml() {
    let mut disc = Discovery::new(DiscoveryConfig::fixture(fixture_dir("h100-recorded")));
    let inv = disc.scan();
    assert_eq!(
        summary(&inv),
        vec![(
            s("GPU-1224dff1-ed17-683b-736e-bcd3e5f8a6e5"),
            "nvidia_gpu",
            s("NVIDIA H100 80GB HBM3"),
            85_520_809_984,
            1979.0,
            "catalog"
        )]
    );
    let g = &inv.devices[0];
    assert_eq!(g.attributes["compute_capability"], "9.0");
    assert_eq!(g.attributes["driver_version"], "580.159.04");
    assert_eq!(g.memory_free_bytes, 85_017_493_504);
    // The capture holds no procfs: no CPU device, and the inventory says why.
    assert_eq!(
        inv.warnings(),
        vec!["warn: /proc/cpuinfo unreadable: no CPU device"]
    );
    let t = disc.telemetry(&inv);
    assert_eq!(t[0].temperature_celsius, Some(39.0));
    assert_eq!(t[0].power_watts, Some(121.873));
}

/// A recorded Vulkan listing of the arc-npu-ncs2 host with an AMD card added: the loader
/// lists lavapipe, the AMD card, then the Arc (vulkaninfo order on such a host).
const VULKAN_ARC_AMD_LAVAPIPE: &str = r#"[
  {"index": 0, "name": "llvmpipe (LLVM 15.0.6, 256 bits)", "vendor_id": 65541, "device_id": 0,
   "device_type": "cpu", "pci_bus_id": null, "device_local_bytes": 2147483648, "driver": "llvmpipe Mesa 22.3.6"},
  {"index": 1, "name": "AMD Radeon RX 7800 XT (RADV NAVI32)", "vendor_id": 4098, "device_id": 29822,
   "device_type": "discrete", "pci_bus_id": "0000:0a:00.0", "device_local_bytes": 17163091968, "driver": "radv Mesa 22.3.6"},
  {"index": 2, "name": "Intel(R) Arc(tm) A770 Graphics (DG2)", "vendor_id": 32902, "device_id": 22176,
   "device_type": "discrete", "pci_bus_id": "0000:03:00.0", "device_local_bytes": 16225243136, "driver": "Intel open-source Mesa driver Mesa 22.3.6"}
]"#;

#[test]
fn fixture_vulkan_identity_of_the_arc_by_pci_bus_id_and_an_amd_card_as_vulkan_gpu_recorded() {
    let dir = fixture_copy("arc-npu-ncs2");
    std::fs::write(dir.path().join("vulkan.json"), VULKAN_ARC_AMD_LAVAPIPE).unwrap();
    let inv = Discovery::new(DiscoveryConfig::fixture(dir.path())).scan();
    let arc = inv.device("pci-0000:03:00.0").unwrap();
    // Third in the loader's order: GGML_VK_VISIBLE_DEVICES=2 selects it.
    assert_eq!(arc.attributes["vulkan_index"], "2");
    assert_eq!(
        arc.attributes["vulkan_name"],
        "Intel(R) Arc(tm) A770 Graphics (DG2)"
    );
    let amd = inv
        .device("vk-0000:0a:00.0")
        .unwrap_or_else(|| panic!("{}", render_table(&inv)));
    assert_eq!(amd.kind(), switchyard_proto::v1::DeviceKind::VulkanGpu);
    assert_eq!(
        (amd.vendor.as_str(), amd.attributes["vulkan_index"].as_str()),
        ("AMD", "1")
    );
    assert_eq!(amd.memory_total_bytes, 17_163_091_968);
    // lavapipe is not a device without [discovery] software_gpu, and says how to admit it.
    assert!(
        !inv.devices
            .iter()
            .any(|d| d.attributes.contains_key("software"))
    );
    assert!(
        inv.notes
            .iter()
            .any(|n| n.contains("llvmpipe") && n.contains("software_gpu"))
    );
    // The NPU and the NCS2 get no Vulkan identity.
    assert!(
        inv.devices
            .iter()
            .filter(|d| d.attributes.contains_key("vulkan_index"))
            .count()
            == 2
    );
}

#[test]
fn fixture_vulkan_order_differs_from_nvml_and_each_gpu_gets_its_own_index_recorded() {
    let dir = fixture_copy("two-nvidia");
    // The NVIDIA Vulkan ICD lists the 5090 (02:00.0) before the 4070 (01:00.0).
    std::fs::write(
        dir.path().join("vulkan.json"),
        r#"[{"index": 0, "name": "NVIDIA GeForce RTX 5090", "vendor_id": 4318, "device_id": 11141, "device_type": "discrete",
             "pci_bus_id": "0000:02:00.0", "device_local_bytes": 34190917632, "driver": "NVIDIA 570.124.04"},
            {"index": 1, "name": "NVIDIA GeForce RTX 4070 SUPER", "vendor_id": 4318, "device_id": 10115, "device_type": "discrete",
             "pci_bus_id": "0000:01:00.0", "device_local_bytes": 12878610432, "driver": "NVIDIA 570.124.04"}]"#,
    )
    .unwrap();
    let inv = Discovery::new(DiscoveryConfig::fixture(dir.path())).scan();
    let by_model = |m: &str| inv.devices.iter().find(|d| d.model.contains(m)).unwrap();
    let rtx4070 = by_model("4070");
    let rtx5090 = by_model("5090");
    assert_eq!(rtx4070.attributes["cuda_ordinal"], "0");
    assert_eq!(rtx4070.attributes["vulkan_index"], "1");
    assert_eq!(rtx5090.attributes["cuda_ordinal"], "1");
    assert_eq!(rtx5090.attributes["vulkan_index"], "0");
    assert_eq!(
        inv.devices.len(),
        3,
        "no duplicate Vulkan devices: {}",
        render_table(&inv)
    );
}
