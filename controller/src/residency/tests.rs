use std::path::Path;

use switchyard_backend_core::ModelRegistry;
use switchyard_proto::v1::{NodeInfo, ResidentModel};

use switchyard_api::KeepAlive;

use super::*;
use crate::placement::PlacementSettings;

fn resident(model: &str, pinned: bool, in_flight: u32, idle_s: u64) -> ResidentModel {
    ResidentModel {
        model: model.into(),
        device_id: "cpu".into(),
        backend: "ort-cpu".into(),
        memory_bytes: 60_000_000,
        in_flight,
        pinned,
        idle_ms: idle_s * 1000,
        precision: "f32".into(),
        load_ms: 0.0,
        streams: 1,
        layout: String::new(),
    }
}

fn setup(models: Vec<ResidentModel>) -> (Arc<ClusterState>, Placer) {
    let cluster = Arc::new(ClusterState::new(Duration::from_secs(1), 3));
    let info = NodeInfo {
        node_name: "a".into(),
        agent_endpoint: "http://127.0.0.1:1".into(),
        resident_models: models,
        ..Default::default()
    };
    cluster.register(info, "inst-1").expect("register");
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/registry.toml");
    let registry = ModelRegistry::load(&file, Path::new("/models")).expect("registry");
    let placer = Placer::new(
        cluster.clone(),
        Arc::new(crate::models::ModelSet::fixed(registry)),
        PlacementSettings::default(),
    );
    (cluster, placer)
}

fn config() -> ResidencyConfig {
    ResidencyConfig {
        keep_alive_s: 10,
        pinned: vec!["router".into()],
        reconcile_interval_ms: 1000,
    }
}

fn reconciler() -> Reconciler {
    Reconciler::new(config(), Arc::new(KeepAlives::new(&config())))
}

#[test]
fn a_pinned_model_loaded_on_demand_gets_pinned_where_it_is() {
    let (cluster, placer) = setup(vec![resident("router", false, 0, 0)]);
    let mut r = reconciler();
    let now = Instant::now();
    let pin = Action::Load {
        node: "a".into(),
        device: "cpu".into(),
        backend: "ort-cpu".into(),
        model: "router".into(),
    };
    assert_eq!(r.plan(&cluster, &placer, now), vec![pin.clone()]);
    // Sent and not yet visible: not repeated on the next tick...
    assert_eq!(
        r.plan(&cluster, &placer, now + Duration::from_secs(1)),
        vec![]
    );
    // ...but sent again if the agent never confirmed it.
    assert_eq!(
        r.plan(&cluster, &placer, now + Duration::from_secs(6)),
        vec![pin]
    );
    // Never unloaded after its keep-alive, unlike other models.
    let (cluster, placer) = setup(vec![resident("router", true, 0, 60)]);
    let mut r = reconciler();
    assert_eq!(r.plan(&cluster, &placer, now), vec![]);
}

#[test]
fn idle_models_are_unloaded_after_keep_alive_but_never_while_in_use() {
    // keep_alive_s = 10; idle times as the agent reports them.
    let (cluster, placer) = setup(vec![
        resident("router", true, 0, 60),
        resident("minilm-l6-v2", false, 0, 11),
        resident("smollm2-135m", false, 1, 11),
        resident("smollm2-135m-code", false, 0, 9),
    ]);
    let mut r = reconciler();
    assert_eq!(
        r.plan(&cluster, &placer, Instant::now()),
        vec![Action::Unload {
            node: "a".into(),
            device: "cpu".into(),
            model: "minilm-l6-v2".into(),
        }]
    );
}

#[test]
fn a_client_keep_alive_changes_when_an_idle_model_is_unloaded() {
    // Idle 2 s: under the default (10 s), so it stays...
    let (cluster, placer) = setup(vec![resident("minilm-l6-v2", false, 0, 2)]);
    let keep = Arc::new(KeepAlives::new(&config()));
    let mut r = Reconciler::new(config(), keep.clone());
    let now = Instant::now();
    assert_eq!(r.plan(&cluster, &placer, now), vec![]);
    // ...kept forever: stays even past the default...
    let (old, _) = setup(vec![resident("minilm-l6-v2", false, 0, 60)]);
    keep.set("minilm-l6-v2", KeepAlive::Forever).unwrap();
    assert_eq!(r.plan(&old, &placer, now), vec![]);
    // ...keep_alive 0: unloaded at once, and only once.
    keep.set("minilm-l6-v2", KeepAlive::Unload).unwrap();
    let unload = Action::Unload {
        node: "a".into(),
        device: "cpu".into(),
        model: "minilm-l6-v2".into(),
    };
    assert_eq!(r.plan(&cluster, &placer, now), vec![unload]);
    assert_eq!(
        keep.idle_limit("minilm-l6-v2"),
        Some(Duration::from_secs(10))
    );
}
