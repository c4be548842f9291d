use super::*;

#[test]
fn a_configured_server_that_is_missing_is_named() {
    let s = LlamaCppSettings {
        server: Some("/nowhere/llama-server".into()),
        threads: None,
    };
    let err = locate(&s).unwrap_err();
    assert!(
        err.contains("/nowhere/llama-server") && err.contains("[engines.llama_cpp]"),
        "{err}"
    );
}

/// The load log of a Vulkan engine on lavapipe (`-lv 4`, recorded here from the real build).
const LAVAPIPE_LOAD_LOG: &str = "0.00.132.544 I llama_prepare_model_devices: using device Vulkan0 (llvmpipe (LLVM 15.0.6, 256 bits)) (unknown id) - 2048 MiB free
0.00.182.029 I load_tensors: offloading output layer to GPU
0.00.182.046 I load_tensors: offloading 29 repeating layers to GPU
0.00.182.046 I load_tensors: offloaded 31/31 layers to GPU
0.00.182.053 I load_tensors:   CPU_Mapped model buffer size =    28.69 MiB
0.00.182.054 I load_tensors:      Vulkan0 model buffer size =    92.10 MiB";

#[test]
fn the_load_log_tells_whether_every_layer_went_to_the_pinned_device() {
    let mut o = process::Offload::default();
    for line in LAVAPIPE_LOAD_LOG.lines() {
        o.note(line);
    }
    assert_eq!(o.layers, Some((31, 31)));
    assert_eq!(o.buffers, ["CPU_Mapped", "Vulkan0"]);
    o.check("Vulkan0", None).unwrap();
    let why = o.check("Vulkan1", None).unwrap_err();
    assert!(why.contains("no model buffer on Vulkan1"), "{why}");

    let mut partial = process::Offload::default();
    partial.note("load_tensors: offloaded 12/31 layers to GPU");
    partial.note("load_tensors:      Vulkan0 model buffer size =    30.00 MiB");
    let why = partial.check("Vulkan0", None).unwrap_err();
    assert!(why.contains("12/31"), "{why}");
    // A partial offload planned at 12 layers: what it should be; at 14: too few.
    partial.check("Vulkan0", Some(12)).unwrap();
    let why = partial.check("Vulkan0", Some(14)).unwrap_err();
    assert!(why.contains("12/31 layers to Vulkan0, 14 planned"), "{why}");
    let why = process::Offload::default()
        .check("Vulkan0", None)
        .unwrap_err();
    assert!(why.contains("no offload"), "{why}");
}
