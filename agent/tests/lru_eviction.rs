//! LRU eviction with the real models and the real ONNX Runtime backend: a device that holds
//! one small model at a time makes room by evicting the least recently used idle model,
//! never a pinned one, and keeps serving what is resident.
//!
//! Models come from `scripts/setup.sh` (`models/registry.toml` + `paths::models_dir()`).

use std::path::Path;

use switchyard_agent::runner::StageRunner;
use switchyard_backend_core::{BackendError, ModelRegistry, StageKind, paths};
use switchyard_backends::BackendSet;
use switchyard_proto::v1::{Device, DeviceKind};

/// A simulated NPU (executes on the CPU) with room for one 60 MB model, not two.
const DEVICE: &str = "sim-npu";

fn runner() -> StageRunner {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/registry.toml");
    let registry = ModelRegistry::load(&file, &paths::models_dir()).expect("registry parses");
    let available = registry.available();
    for model in ["router", "minilm-l6-v2"] {
        assert!(
            available.iter().any(|a| a == model),
            "model {model} is not prepared under {} (run scripts/setup.sh)",
            paths::models_dir().display()
        );
    }
    let set = BackendSet::from_env();
    assert!(
        set.ids().contains(&"ort-cpu"),
        "ONNX Runtime must load (run scripts/setup.sh): {set:?}"
    );
    let runner = StageRunner::new("edge", registry, set.backends(), 64);
    runner.set_devices(&[Device {
        id: DEVICE.into(),
        kind: DeviceKind::IntelNpu as i32,
        memory_total_bytes: 100_000_000,
        memory_free_bytes: 100_000_000,
        simulated: true,
        ..Default::default()
    }]);
    runner
}

fn resident(runner: &StageRunner) -> Vec<(String, bool)> {
    runner
        .resident_models()
        .into_iter()
        .map(|r| (r.model, r.pinned))
        .collect()
}

async fn embed(runner: &StageRunner, text: &str) -> Result<(), BackendError> {
    let out = runner
        .run_batch(
            StageKind::Embed,
            "minilm-l6-v2",
            DEVICE,
            "ort-cpu",
            vec![text.to_string()],
        )
        .await?;
    assert_eq!(out.backend, "ort-cpu");
    assert!(out.simulated, "a fixture device says it is simulated");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_device_evicts_its_least_recently_used_idle_model_but_never_a_pinned_one() {
    let runner = runner();

    // The router fills the device; embedding then needs its room: the router is evicted.
    let (scores, _) = runner
        .classify(
            "router",
            DEVICE,
            "ort-cpu",
            vec!["write a python function".into()],
        )
        .await
        .expect("router runs");
    assert_eq!(scores.len(), 1);
    assert_eq!(resident(&runner), vec![("router".to_string(), false)]);
    // Each copy reports what its load took (explain's "cold start ≈ N s", however it was
    // loaded).
    assert!(runner.resident_models()[0].load_ms > 0.0);
    embed(&runner, "retrieval context")
        .await
        .expect("embedding runs after evicting the router");
    assert_eq!(resident(&runner), vec![("minilm-l6-v2".to_string(), false)]);

    // Pinned, the embedding model stays: the router is refused, with the reason, and
    // nothing is evicted.
    let pinned = runner
        .load("minilm-l6-v2", DEVICE, "ort-cpu", true)
        .await
        .expect("pin a resident model");
    assert!(pinned.pinned);
    let err = runner
        .load("router", DEVICE, "ort-cpu", false)
        .await
        .expect_err("no room without evicting a pinned model");
    assert!(matches!(err, BackendError::OutOfMemory(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("router on sim-npu") && msg.contains("minilm-l6-v2 (pinned)"),
        "{msg}"
    );
    assert_eq!(resident(&runner), vec![("minilm-l6-v2".to_string(), true)]);

    // The resident model still serves.
    embed(&runner, "still serving")
        .await
        .expect("still serving");
}
