use super::*;

/// `--list-devices` of a CUDA+Vulkan build on a host with two RTX cards, run with
/// `CUDA_VISIBLE_DEVICES=<the 5090's UUID>` (recorded output; no NVIDIA driver runs here).
const RECORDED_CUDA_ONE_VISIBLE: &str = "ggml_cuda_init: found 1 CUDA devices:\n  Device 0: NVIDIA GeForce RTX 5090, compute capability 12.0, VMM: yes\nload_backend: loaded CUDA backend from /cache/libggml-cuda.so\nload_backend: loaded CPU backend from /cache/libggml-cpu.so\nAvailable devices:\n  CUDA0: NVIDIA GeForce RTX 5090 (32607 MiB, 31972 MiB free)\n";
/// The same build with `GGML_VK_VISIBLE_DEVICES=1` on a host with an Arc A770 second in the
/// Vulkan loader's order (recorded output; no Intel GPU here).
const RECORDED_VULKAN_ARC: &str = "ggml_vulkan: Found 1 Vulkan devices:\nggml_vulkan: 0 = Intel(R) Arc(tm) A770 Graphics (DG2) (Intel open-source Mesa driver) | uma: 0 | fp16: 1 | bf16: 0 | warp size: 32 | shared memory: 65536 | int dot: 1 | matrix cores: none\nAvailable devices:\n  Vulkan0: Intel(R) Arc(tm) A770 Graphics (DG2) (16032 MiB, 16032 MiB free)\n";

fn device(kind: DeviceKind, model: &str, attrs: &[(&str, &str)]) -> Device {
    let mut d = Device {
        id: "dev".into(),
        kind: kind as i32,
        model: model.into(),
        ..Default::default()
    };
    for (k, v) in attrs {
        d.attributes.insert(k.to_string(), v.to_string());
    }
    d
}

fn build(cuda: bool, vulkan: bool) -> BuildDevices {
    BuildDevices {
        cuda,
        vulkan,
        ..Default::default()
    }
}

#[test]
fn list_devices_output_names_each_device_of_recorded_builds_fixture() {
    assert!(listed_devices("Available devices:\n  (none)\n").is_empty());
    let cuda = listed_devices(RECORDED_CUDA_ONE_VISIBLE);
    assert_eq!(
        cuda.len(),
        1,
        "the 'Device 0:' load line is not a device: {cuda:?}"
    );
    assert_eq!(cuda[0].name, "CUDA0");
    assert!(cuda[0].description.starts_with("NVIDIA GeForce RTX 5090"));
    let b = BuildDevices::parse(&format!(
        "{RECORDED_CUDA_ONE_VISIBLE}  Vulkan0: Intel Arc\n"
    ));
    assert!(b.cuda && b.vulkan && !b.sycl);
    assert_eq!(b.name(), "CUDA+Vulkan build");
    assert_eq!(BuildDevices::default().name(), "cpu build");
}

#[test]
fn an_nvidia_gpu_is_pinned_by_uuid_to_cuda0_recorded_fixture() {
    let uuid = "GPU-d3b7a9f2-61c4-4e08-b5a3-7c19e2f4d6b8";
    let gpu = device(
        DeviceKind::NvidiaGpu,
        "NVIDIA GeForce RTX 5090",
        &[("uuid", uuid), (VULKAN_INDEX, "0")],
    );
    let pin = plan(&build(true, true), &gpu).unwrap();
    assert_eq!(pin.family, Family::Cuda);
    assert!(pin.env.contains(&pair("CUDA_VISIBLE_DEVICES", uuid)));
    assert!(pin.env.contains(&pair("CUDA_DEVICE_ORDER", "PCI_BUS_ID")));
    assert_eq!(pin.args, ["--device", "CUDA0", "--n-gpu-layers", "999"]);
    assert_eq!(pin.describe(), "cuda:CUDA0");
    let seen = check(RECORDED_CUDA_ONE_VISIBLE, &pin, &gpu.model).unwrap();
    assert_eq!(seen.name, "CUDA0");
    // The engine shows another card under that UUID: identity mismatch, refused.
    let why = check(
        RECORDED_CUDA_ONE_VISIBLE,
        &pin,
        "NVIDIA GeForce RTX 4070 SUPER",
    )
    .unwrap_err();
    assert!(why.contains("identity mismatch"), "{why}");
    // Without CUDA the same GPU goes through Vulkan, by its Vulkan index.
    let pin = plan(&build(false, true), &gpu).unwrap();
    assert_eq!(pin.family, Family::Vulkan);
    assert!(pin.env.contains(&pair("GGML_VK_VISIBLE_DEVICES", "0")));
}

#[test]
fn an_intel_arc_is_pinned_through_vulkan_by_its_matched_index_recorded_fixture() {
    let arc = device(
        DeviceKind::IntelGpu,
        "Intel Arc A770",
        &[
            ("pci_bus_id", "0000:03:00.0"),
            (VULKAN_INDEX, "1"),
            (VULKAN_NAME, "Intel(R) Arc(tm) A770 Graphics (DG2)"),
        ],
    );
    let pin = plan(&build(false, true), &arc).unwrap();
    assert_eq!(pin.family, Family::Vulkan);
    assert!(pin.env.contains(&pair("GGML_VK_VISIBLE_DEVICES", "1")));
    assert!(!pin.env.iter().any(|(k, _)| k == "GGML_VK_DISABLE_F16"));
    assert_eq!(pin.args, ["--device", "Vulkan0", "--n-gpu-layers", "999"]);
    check(RECORDED_VULKAN_ARC, &pin, &arc.attributes[VULKAN_NAME]).unwrap();
    // Two devices visible (the variable ignored by an old build): refused, not guessed.
    let two = format!(
        "{RECORDED_VULKAN_ARC}  Vulkan1: AMD Radeon RX 7800 XT (16368 MiB, 16000 MiB free)\n"
    );
    let why = check(&two, &pin, &arc.attributes[VULKAN_NAME]).unwrap_err();
    assert!(why.contains("want exactly Vulkan0"), "{why}");
    // No device at all (driver missing): the reason says so.
    let why = check(
        "ggml_vulkan: No devices found.\nAvailable devices:\n",
        &pin,
        "x",
    )
    .unwrap_err();
    assert!(why.contains("found no device"), "{why}");
}

#[test]
fn a_gpu_without_a_backend_or_vulkan_identity_is_refused_with_the_fix() {
    let arc = device(
        DeviceKind::IntelGpu,
        "Intel Arc A770",
        &[("pci_bus_id", "0000:03:00.0")],
    );
    let why = plan(&build(false, true), &arc).unwrap_err();
    assert!(
        why.contains("no Vulkan device matches") && why.contains("0000:03:00.0"),
        "{why}"
    );
    let why = plan(&build(false, false), &arc).unwrap_err();
    assert!(why.contains("no Vulkan backend"), "{why}");
    let rtx = device(DeviceKind::NvidiaGpu, "RTX", &[]);
    let why = plan(&BuildDevices::default(), &rtx).unwrap_err();
    assert!(why.contains("no CUDA backend"), "{why}");
    assert!(plan(&build(true, true), &device(DeviceKind::Ncs2, "", &[])).is_err());
}

#[test]
fn the_cpu_gets_no_gpu_and_a_software_device_gets_lavapipe_settings() {
    let cpu = plan(&build(true, true), &device(DeviceKind::Cpu, "", &[])).unwrap();
    assert_eq!(cpu.args, ["--device", "none", "--n-gpu-layers", "0"]);
    assert_eq!(cpu.describe(), "cpu");
    let lvp = device(
        DeviceKind::VulkanGpu,
        "llvmpipe (LLVM 15.0.6, 256 bits)",
        &[
            (VULKAN_INDEX, "0"),
            (SOFTWARE, "true"),
            (VULKAN_NAME, "llvmpipe (LLVM 15.0.6, 256 bits)"),
        ],
    );
    let pin = plan(&build(false, true), &lvp).unwrap();
    assert!(pin.env.contains(&pair("GGML_VK_DISABLE_F16", "1")));
    assert!(pin.env.contains(&pair("GGML_VK_DISABLE_COOPMAT", "1")));
    let out = "Available devices:\n  Vulkan0: llvmpipe (LLVM 15.0.6, 256 bits) (2048 MiB, 2048 MiB free)\n";
    check(out, &pin, "llvmpipe (LLVM 15.0.6, 256 bits)").unwrap();
}

#[test]
fn an_npu_runs_llama_cpp_through_openvino_one_slot_q4_0_recorded_fixture() {
    let npu = device(
        DeviceKind::IntelNpu,
        "Intel AI Boost NPU (Meteor Lake)",
        &[],
    );
    let why = plan(&BuildDevices::default(), &npu).unwrap_err();
    assert!(why.contains("--with openvino"), "{why}");
    let build = BuildDevices {
        openvino: true,
        ..Default::default()
    };
    let pin = npu_pin(None);
    assert_eq!(pin.family, Family::OpenVino);
    assert!(pin.env.contains(&pair("GGML_OPENVINO_DEVICE", "NPU")));
    assert_eq!(pin.args, ["--device", "OPENVINO0", "--n-gpu-layers", "999"]);
    assert_eq!(pin.parallel(4), 1, "an NPU serves one slot");
    assert_eq!(pin.describe(), "openvino:OPENVINO0@NPU");
    pin.runs("Q4_0").unwrap();
    let why = pin.runs("Q4_1").unwrap_err();
    assert!(
        why.contains("Q4_0") && why.contains("llama-quantize"),
        "{why}"
    );
    // The CPU standing in for the NPU runs the same backend, any quantisation.
    let stand_in = npu_pin(Some("CPU".into()));
    assert_eq!(stand_in.describe(), "openvino:OPENVINO0@CPU");
    stand_in.runs("Q4_1").unwrap();
    // `--list-devices` of this tree with the OpenVINO backend, as built here.
    let out = "Available devices:\n  Vulkan0: llvmpipe (LLVM 15.0.6, 256 bits) (2048 MiB, 2048 MiB free)\n  OPENVINO0: OpenVINO Runtime (24105 MiB, 24105 MiB free)\n";
    check(out, &pin, "").unwrap();
    assert_eq!(
        plan(&build, &npu).unwrap().describe(),
        "openvino:OPENVINO0@NPU"
    );
    // A simulated NPU (fixture inventory) executes on the CPU, like every simulated device.
    let simulated = Device {
        simulated: true,
        ..npu
    };
    assert_eq!(
        plan(&build, &simulated).unwrap().describe(),
        "openvino:OPENVINO0@CPU"
    );
}
