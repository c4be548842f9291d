//! A CPU encoder loaded as streams brings a wide instance, a second copy of its weights: the
//! agent reserves (and reports) the entry's `memory_bytes` for each copy, so eviction and the
//! scheduler see what it really holds. Real MiniLM on the real OpenVINO CPU backend.

use std::path::Path;

use switchyard_agent::runner::StageRunner;
use switchyard_backend_core::{ModelRegistry, StageKind, paths};
use switchyard_backends::BackendSet;
use switchyard_proto::v1::{Device, DeviceKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_encoder_with_a_wide_instance_reserves_a_copy_of_its_weights_for_each() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/registry.toml");
    let registry = ModelRegistry::load(&file, &paths::models_dir()).expect("registry parses");
    let per_copy = registry.get("minilm-l6-v2").expect("minilm").memory_bytes;
    let set = BackendSet::from_env();
    assert!(
        set.ids().contains(&"openvino"),
        "OpenVINO must load (run scripts/setup.sh): {set:?}"
    );
    let runner = StageRunner::new("n", registry, set.backends(), 64);
    runner.set_devices(&[Device {
        id: "cpu".into(),
        kind: DeviceKind::Cpu as i32,
        memory_total_bytes: 8_000_000_000,
        memory_free_bytes: 8_000_000_000,
        ..Default::default()
    }]);
    runner
        .run_batch(
            StageKind::Embed,
            "minilm-l6-v2",
            "cpu",
            "openvino",
            vec!["hello".into()],
        )
        .await
        .expect("embeds");
    let resident = runner.resident_models();
    let minilm = resident
        .iter()
        .find(|r| r.model == "minilm-l6-v2")
        .expect("resident");
    // Two streams (one copy) plus the wide instance (another), on two or more threads.
    let copies = if paths::inference_threads() >= 2 {
        2
    } else {
        1
    };
    assert_eq!(minilm.streams, paths::inference_threads().min(2) as u32);
    assert_eq!(minilm.memory_bytes, per_copy * copies);
    assert_eq!(runner.reserved_bytes()["cpu"], per_copy * copies);
}
