use super::*;
use crate::circuit::BreakerConfig;
use crate::latency::LatencyConfig;
use crate::view::{DeviceView, NodeView};

const GB: u64 = 1_000_000_000;

fn dev(id: &str, kind: DeviceType, total: u64, free: u64, backends: &[&str]) -> DeviceView {
    let mut d = DeviceView::new(id, kind);
    d.memory_total_bytes = total;
    d.memory_free_bytes = free;
    d.backends = backends.iter().map(|s| s.to_string()).collect();
    d.tops = match kind {
        DeviceType::Cpu => 1.0,
        DeviceType::NvidiaGpu => 284.0,
        DeviceType::IntelGpu => 233.0,
        DeviceType::IntelNpu => 11.0,
        DeviceType::Ncs2 => 1.0,
        DeviceType::VulkanGpu => 0.0,
    };
    d
}

fn cluster() -> ClusterView {
    ClusterView::new(vec![
        NodeView::new(
            "edge",
            vec![
                dev(
                    "cpu",
                    DeviceType::Cpu,
                    16 * GB,
                    8 * GB,
                    &["ort-cpu", "openvino"],
                ),
                dev("ncs2-0", DeviceType::Ncs2, GB / 2, GB / 2, &["openvino"]),
                dev("npu0", DeviceType::IntelNpu, 4 * GB, 4 * GB, &["openvino"]),
            ],
        ),
        NodeView::new(
            "gpu-box",
            vec![
                dev("cpu", DeviceType::Cpu, 64 * GB, 32 * GB, &["ort-cpu"]),
                dev(
                    "GPU-aaaa",
                    DeviceType::NvidiaGpu,
                    12 * GB,
                    10 * GB,
                    &["ort-cuda"],
                ),
            ],
        ),
    ])
    .unwrap()
}

struct Ctx {
    policy: PlacementPolicy,
    breakers: CircuitBreakers,
    latency: LatencyStats,
    now: Instant,
}

impl Ctx {
    fn new() -> Self {
        Ctx {
            policy: PlacementPolicy::default(),
            breakers: CircuitBreakers::new(BreakerConfig::default()),
            latency: LatencyStats::new(LatencyConfig::default()),
            now: Instant::now(),
        }
    }
    fn req(&self, stage: StageKind, model: &str, mem: u64) -> PlacementRequest {
        PlacementRequest::new(stage, model, mem, self.now)
    }
    fn place(&self, v: &ClusterView, r: &PlacementRequest) -> Placement {
        let p = place(v, r, &self.policy, &self.breakers, &self.latency);
        let e = self.explain(v, r);
        let k = r.top_k.max(1).min(e.candidates.len());
        assert_eq!(p.candidates, e.candidates[..k], "place agrees with explain");
        p
    }
    fn explain(&self, v: &ClusterView, r: &PlacementRequest) -> Explanation {
        explain(v, r, &self.policy, &self.breakers, &self.latency)
    }
}

fn names(p: &Placement) -> Vec<(String, String)> {
    p.candidates
        .iter()
        .map(|c| (c.node.clone(), c.device.clone()))
        .collect()
}

#[test]
fn classification_goes_to_the_preferred_kind() {
    let ctx = Ctx::new();
    let v = cluster();
    let p = ctx.place(&v, &ctx.req(StageKind::Classify, "router", 60_000_000));
    let best = p.best().unwrap();
    // By default the NPU: the NCS2 comes after the devices that run now (it needs the
    // legacy OpenVINO 2022.3 runtime).
    assert_eq!(best.kind, DeviceType::IntelNpu);
    assert_eq!(best.backend, "openvino");
    // A policy that ranks the NCS2 first gets it.
    let mut ncs2_first = Ctx::new();
    ncs2_first.policy.stage_preferences.classify =
        vec![DeviceType::Ncs2, DeviceType::IntelNpu, DeviceType::Cpu];
    let p = ncs2_first.place(
        &v,
        &ncs2_first.req(StageKind::Classify, "router", 60_000_000),
    );
    let best = p.best().unwrap();
    assert_eq!((best.node.as_str(), best.kind), ("edge", DeviceType::Ncs2));
    assert_eq!(p.candidates[1].kind, DeviceType::IntelNpu);
    // Generation prefers the NVIDIA GPU and uses its CUDA backend.
    let p = ctx.place(&v, &ctx.req(StageKind::Generate, "smollm2", 750_000_000));
    assert_eq!(p.best().unwrap().device, "GPU-aaaa");
    assert_eq!(p.best().unwrap().backend, "ort-cuda");
    // Embedding prefers the NPU.
    let p = ctx.place(&v, &ctx.req(StageKind::Embed, "minilm", 60_000_000));
    assert_eq!(p.best().unwrap().kind, DeviceType::IntelNpu);
}

#[test]
fn backend_follows_policy_then_model_support() {
    let ctx = Ctx::new();
    let v = cluster();
    let mut policy = PlacementPolicy::default();
    policy.stage_preferences.embed = vec![DeviceType::Cpu];
    policy.allow_unlisted_kinds = false;
    let r = ctx.req(StageKind::Embed, "m", 1);
    let p = place(&v, &r, &policy, &ctx.breakers, &ctx.latency);
    let edge = p.candidates.iter().find(|c| c.node == "edge").unwrap();
    assert_eq!(edge.backend, "openvino", "policy prefers openvino on cpu");
    let r = r.with_backends(["ort-cpu"]);
    let p = place(&v, &r, &policy, &ctx.breakers, &ctx.latency);
    assert!(p.candidates.iter().all(|c| c.backend == "ort-cpu"));
    // A backend the policy does not list is still usable.
    policy.backend_preferences.cpu.clear();
    let p = place(&v, &r, &policy, &ctx.breakers, &ctx.latency);
    assert_eq!(p.candidates.len(), 2);
    assert!(p.candidates.iter().all(|c| c.backend == "ort-cpu"));
    // Unlisted kinds refused: the explanation says so.
    let e = explain(&v, &r, &policy, &ctx.breakers, &ctx.latency);
    let npu = e.rejected.iter().find(|x| x.device == "npu0").unwrap();
    assert_eq!(
        npu.reason,
        RejectReason::KindNotAllowed {
            kind: DeviceType::IntelNpu,
            stage: StageKind::Embed
        }
    );
}

#[test]
fn never_placed_where_it_does_not_fit_with_headroom() {
    let ctx = Ctx::new();
    let v = cluster();
    // 9.5 GB: GPU has 10 GB free but needs 1.2 GB headroom; CPU gpu-box has 32 GB free.
    let r = ctx.req(StageKind::Generate, "big", 9_500_000_000);
    let p = ctx.place(&v, &r);
    assert_eq!(names(&p), vec![("gpu-box".into(), "cpu".into())]);
    let e = ctx.explain(&v, &r);
    let gpu = e.rejected.iter().find(|x| x.device == "GPU-aaaa").unwrap();
    assert_eq!(
        gpu.reason,
        RejectReason::DoesNotFit {
            needed_bytes: 9_500_000_000,
            headroom_bytes: 1_200_000_000,
            reclaimable_bytes: 0,
            free_bytes: 10 * GB
        }
    );
    assert!(gpu.to_string().contains("does not fit"), "{gpu}");
    // 8.5 GB fits the GPU: 8.5 + 1.2 ≤ 10.
    let p = ctx.place(&v, &ctx.req(StageKind::Generate, "big", 8_500_000_000));
    assert_eq!(p.best().unwrap().device, "GPU-aaaa");
    // Every candidate keeps its headroom free.
    for c in &ctx.explain(&v, &r).candidates {
        let d = v.device(&c.node, &c.device).unwrap();
        assert!(
            r.memory_bytes + d.memory_total_bytes / 10 <= d.memory_free_bytes,
            "{c:?}"
        );
    }
}

#[test]
fn resident_model_needs_no_memory_and_is_preferred() {
    let ctx = Ctx::new();
    let mut v = cluster();
    // Two NVIDIA-less choices for generation: both CPUs. Make edge's CPU warm and full.
    v.update_device("edge", "cpu", |d| {
        d.resident_models = vec!["smollm2".into()];
        d.memory_free_bytes = 100_000_000;
    });
    v.update_device("gpu-box", "GPU-aaaa", |d| d.healthy = false);
    let p = ctx.place(&v, &ctx.req(StageKind::Generate, "smollm2", 750_000_000));
    let best = p.best().unwrap();
    assert_eq!((best.node.as_str(), best.warm), ("edge", true));
    assert!(
        best.score_detail().contains("warm"),
        "{}",
        best.score_detail()
    );
    assert!(!p.candidates[1].warm);
    // Without residency edge's CPU would not fit at all.
    let p = ctx.place(&v, &ctx.req(StageKind::Generate, "other", 750_000_000));
    assert_eq!(names(&p)[0], ("gpu-box".into(), "cpu".into()));
    assert!(!names(&p).contains(&("edge".into(), "cpu".into())));
}

#[test]
fn memory_held_by_idle_models_counts_as_room_and_the_eviction_is_explained() {
    let ctx = Ctx::new();
    let mut v = cluster();
    // The GPU (GPU-aaaa, 12 GB) is almost full: 1 GB free, 9 GB held by idle models.
    v.update_device("gpu-box", "GPU-aaaa", |d| {
        d.memory_free_bytes = GB;
        d.reclaimable_bytes = 9 * GB;
    });
    let r = ctx.req(StageKind::Generate, "big", 4 * GB);
    let p = ctx.place(&v, &r);
    let best = p.best().unwrap();
    assert_eq!(best.device, "GPU-aaaa", "{:?}", names(&p));
    // 4 GB + 1.2 GB headroom − 1 GB free = 4.2 GB to evict.
    let detail = best.score_detail();
    assert!(
        detail.contains("evicts 4200.0 MB of idle models"),
        "{detail}"
    );
    // Beyond free + reclaimable it does not fit, and the reason names both figures.
    let r = ctx.req(StageKind::Generate, "huge", 9_500_000_000);
    let e = ctx.explain(&v, &r);
    let gpu = e.rejected.iter().find(|x| x.device == "GPU-aaaa").unwrap();
    let why = gpu.to_string();
    assert!(
        why.contains("1000.0 MB free + 9000.0 MB held by idle models"),
        "{why}"
    );
}

#[test]
fn a_node_without_the_model_files_is_never_chosen_and_says_why() {
    let ctx = Ctx::new();
    let mut v = cluster();
    // gpu-box reports only the router's files: generation must go to edge.
    let mut gpu_box = v.node("gpu-box").unwrap().clone();
    gpu_box.available_models = Some(vec!["router".into()]);
    v.upsert_node(gpu_box).unwrap();
    let r = ctx.req(StageKind::Generate, "smollm2", 750_000_000);
    let p = ctx.place(&v, &r);
    assert!(
        names(&p).iter().all(|(node, _)| node == "edge"),
        "{:?}",
        names(&p)
    );
    let e = ctx.explain(&v, &r);
    let gpu = e.rejected.iter().find(|x| x.device == "GPU-aaaa").unwrap();
    assert_eq!(gpu.reason, RejectReason::ModelFilesMissing);
    assert!(gpu.to_string().contains("model files missing"), "{gpu}");
    // The router's files are there: classification may still use gpu-box.
    let r = ctx.req(StageKind::Classify, "router", 60_000_000);
    assert!(
        ctx.explain(&v, &r)
            .rejected
            .iter()
            .all(|x| x.reason != RejectReason::ModelFilesMissing)
    );
}

#[test]
fn busy_concurrency_one_device_is_rejected_with_reason() {
    let ctx = Ctx::new();
    let mut v = cluster();
    v.update_device("edge", "ncs2-0", |d| d.in_flight = 1);
    let r = ctx.req(StageKind::Classify, "router", 60_000_000);
    let p = ctx.place(&v, &r);
    assert_eq!(p.best().unwrap().kind, DeviceType::IntelNpu);
    let e = ctx.explain(&v, &r);
    let ncs = e.rejected.iter().find(|x| x.device == "ncs2-0").unwrap();
    assert_eq!(
        ncs.reason,
        RejectReason::QueueFull {
            in_flight: 1,
            max_concurrency: 1
        }
    );
    assert!(e.to_string().contains("queue full: 1/1"), "{e}");
}

#[test]
fn open_circuit_excluded_devices_and_lost_nodes_are_skipped() {
    let mut ctx = Ctx::new();
    // The NCS2 first, so its breaker decides.
    ctx.policy.stage_preferences.classify =
        vec![DeviceType::Ncs2, DeviceType::IntelNpu, DeviceType::Cpu];
    let mut v = cluster();
    let r = ctx.req(StageKind::Classify, "router", 60_000_000);
    for _ in 0..5 {
        ctx.breakers.record_failure("edge", "ncs2-0", ctx.now);
    }
    let p = ctx.place(&v, &r);
    assert_eq!(p.best().unwrap().device, "npu0");
    let e = ctx.explain(&v, &r);
    assert!(matches!(
        e.rejected[0].reason,
        RejectReason::CircuitOpen { .. }
    ));
    // After the cooldown the NCS2 is a probe candidate again.
    ctx.now += Duration::from_secs(10);
    let r2 = ctx.req(StageKind::Classify, "router", 60_000_000);
    let p = ctx.place(&v, &r2);
    assert!(p.best().unwrap().probe);
    ctx.breakers.on_dispatch("edge", "ncs2-0", ctx.now);
    let e = ctx.explain(&v, &r2);
    assert_eq!(e.rejected[0].reason, RejectReason::ProbeInFlight);

    // Retry after a failure on the NPU: excluded.
    let r3 = r2.clone().excluding("edge", "npu0");
    let p = ctx.place(&v, &r3);
    assert_eq!(p.best().unwrap().device, "cpu");
    assert!(
        ctx.explain(&v, &r3)
            .rejected
            .iter()
            .any(|x| x.device == "npu0" && x.reason == RejectReason::Excluded)
    );

    v.set_node_ready("edge", false);
    let p = ctx.place(&v, &r3);
    assert!(p.candidates.iter().all(|c| c.node == "gpu-box"));
    let e = ctx.explain(&v, &r3);
    assert_eq!(
        e.rejected
            .iter()
            .filter(|x| x.reason == RejectReason::NodeNotReady)
            .count(),
        3
    );
}

#[test]
fn pack_and_spread_flip_the_memory_term() {
    let mut ctx = Ctx::new();
    let v = ClusterView::new(vec![
        NodeView::new(
            "a",
            vec![dev("cpu", DeviceType::Cpu, 10 * GB, 9 * GB, &["ort-cpu"])],
        ),
        NodeView::new(
            "b",
            vec![dev("cpu", DeviceType::Cpu, 10 * GB, 3 * GB, &["ort-cpu"])],
        ),
    ])
    .unwrap();
    let r = ctx.req(StageKind::Embed, "m", GB);
    assert_eq!(ctx.place(&v, &r).best().unwrap().node, "a");
    ctx.policy.mode = PlacementMode::Pack;
    assert_eq!(ctx.place(&v, &r).best().unwrap().node, "b");
}

#[test]
fn lower_latency_and_measured_tops_win_within_a_kind_and_ties_are_stable() {
    let mut ctx = Ctx::new();
    let mk = || {
        ClusterView::new(vec![
            NodeView::new(
                "b",
                vec![dev(
                    "g",
                    DeviceType::NvidiaGpu,
                    12 * GB,
                    12 * GB,
                    &["ort-cuda"],
                )],
            ),
            NodeView::new(
                "a",
                vec![dev(
                    "g",
                    DeviceType::NvidiaGpu,
                    12 * GB,
                    12 * GB,
                    &["ort-cuda"],
                )],
            ),
        ])
        .unwrap()
    };
    let mut v = mk();
    let r = ctx.req(StageKind::Generate, "m", GB);
    // Identical devices: tie broken by node name.
    assert_eq!(names(&ctx.place(&v, &r))[0].0, "a");
    for _ in 0..10 {
        ctx.latency.record(
            StageKind::Generate,
            "m",
            "a",
            "g",
            Duration::from_millis(400),
        );
        ctx.latency.record(
            StageKind::Generate,
            "m",
            "b",
            "g",
            Duration::from_millis(100),
        );
    }
    assert_eq!(names(&ctx.place(&v, &r))[0].0, "b");
    ctx.latency = LatencyStats::new(LatencyConfig::default());
    v.update_device("b", "g", |d| d.measured_tops = Some(100.0));
    v.update_device("a", "g", |d| d.measured_tops = Some(400.0));
    let p = ctx.place(&v, &r);
    assert_eq!(names(&p)[0].0, "a");
    assert!(p.best().unwrap().score_detail().contains("measured"));
}

/// Deterministic pseudo-random clusters: the fast path equals explain's top k.
#[test]
fn fast_path_matches_explain_on_random_clusters() {
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for round in 0..30 {
        let mut nodes = Vec::new();
        for n in 0..40 {
            let mut devs = Vec::new();
            for d in 0..4 {
                let kind = DEVICE_KINDS[rnd(5) as usize];
                let total = (1 + rnd(16)) * GB;
                let mut x = dev(
                    &format!("d{d}"),
                    kind,
                    total,
                    rnd(total + 1),
                    &[["ort-cpu", "openvino", "ort-cuda"][rnd(3) as usize]],
                );
                x.healthy = rnd(10) != 0;
                x.in_flight = rnd(3) as u32;
                if rnd(4) == 0 {
                    x.resident_models = vec!["m".into()];
                }
                // Many exact ties: same tops, same memory on some.
                if rnd(3) == 0 {
                    x.memory_total_bytes = 8 * GB;
                    x.memory_free_bytes = 8 * GB;
                    x.in_flight = 0;
                }
                devs.push(x);
            }
            let mut node = NodeView::new(format!("n{:02}", (n * 7) % 40), devs);
            node.ready = rnd(20) != 0;
            nodes.push(node);
        }
        let v = ClusterView::new(nodes).unwrap();
        let mut ctx = Ctx::new();
        for i in 0..20 {
            let node = format!("n{:02}", rnd(40));
            let device = format!("d{}", rnd(4));
            if i % 2 == 0 {
                ctx.latency.record(
                    StageKind::Embed,
                    "m",
                    &node,
                    &device,
                    Duration::from_millis(1 + rnd(100)),
                );
            } else {
                for _ in 0..5 {
                    ctx.breakers.record_failure(&node, &device, ctx.now);
                }
            }
        }
        for k in [1, 3, 10] {
            let mut r = ctx.req(StageKind::Embed, "m", rnd(4) * GB).with_top_k(k);
            if round % 3 == 0 {
                r = r
                    .excluding("n01", "d1")
                    .with_backends(["openvino", "ort-cuda"]);
            }
            ctx.policy.mode = if round % 2 == 0 {
                PlacementMode::Pack
            } else {
                PlacementMode::Spread
            };
            ctx.place(&v, &r); // asserts agreement
            let e = ctx.explain(&v, &r);
            assert_eq!(e.candidates.len() + e.rejected.len(), v.device_count());
        }
    }
}

#[test]
fn explain_lists_rejections_with_reasons() {
    let ctx = Ctx::new();
    let mut v = cluster();
    v.update_device("gpu-box", "cpu", |d| d.healthy = false);
    let r = ctx
        .req(StageKind::Generate, "smollm2", 750_000_000)
        .with_backends(["ort-cuda", "ort-cpu"]);
    let e = ctx.explain(&v, &r);
    let reasons: Vec<_> = e
        .rejected
        .iter()
        .map(|x| (x.device.as_str(), x.reason))
        .collect();
    assert!(reasons.contains(&("ncs2-0", RejectReason::NoUsableBackend)));
    assert!(reasons.contains(&("cpu", RejectReason::DeviceUnhealthy)));
    let text = e.to_string();
    assert!(text.contains("generate smollm2"), "{text}");
    assert!(
        text.contains("device offers [openvino(f32)], model runs on [ort-cuda, ort-cpu] at f32"),
        "{text}"
    );
    assert!(
        text.contains("#1 gpu-box/GPU-aaaa (nvidia_gpu, ort-cuda)"),
        "{text}"
    );
    assert_eq!(e.candidates.len() + e.rejected.len(), v.device_count());
}

#[test]
fn empty_view_yields_no_candidates() {
    let ctx = Ctx::new();
    let v = ClusterView::new(vec![]).unwrap();
    let p = ctx.place(&v, &ctx.req(StageKind::Embed, "m", 1));
    assert!(p.best().is_none());
    assert_eq!(p.devices_seen, 0);
}

#[test]
fn an_attached_engine_serves_exactly_its_models_without_a_memory_check() {
    let ctx = Ctx::new();
    let mut v = cluster();
    let mut edge = v.node("edge").unwrap().clone();
    edge.available_models = Some(vec!["smollm2".into()]);
    // An Ollama endpoint said to run on a GPU: no memory figures, its own model list.
    let mut ep = dev("endpoint:ollama", DeviceType::NvidiaGpu, 0, 0, &["ollama"]);
    ep.engine_models = Some(vec!["llama3.2".into(), "smollm2".into()]);
    edge.devices.push(ep);
    v.upsert_node(edge).unwrap();
    let mut gpu_box = v.node("gpu-box").unwrap().clone();
    gpu_box.available_models = Some(vec!["smollm2".into()]);
    v.upsert_node(gpu_box).unwrap();
    // Its own model: placed there even though 0 bytes are free, and nowhere else.
    let r = ctx.req(StageKind::Generate, "llama3.2", 4 * GB);
    assert_eq!(
        names(&ctx.place(&v, &r)),
        vec![("edge".to_string(), "endpoint:ollama".to_string())]
    );
    // A model both serve: the engine is one more candidate next to the native devices.
    let r = ctx.req(StageKind::Generate, "smollm2", 750_000_000);
    let p = names(&ctx.place(&v, &r));
    assert!(
        p.contains(&("edge".to_string(), "endpoint:ollama".to_string())),
        "{p:?}"
    );
    assert!(
        p.contains(&("gpu-box".to_string(), "GPU-aaaa".to_string())),
        "{p:?}"
    );
    // A model it does not list never lands on it.
    let r = ctx.req(StageKind::Classify, "router", 60_000_000);
    let e = ctx.explain(&v, &r);
    let ep = e
        .rejected
        .iter()
        .find(|x| x.device == "endpoint:ollama")
        .unwrap();
    assert_eq!(ep.reason, RejectReason::ModelFilesMissing);
}

#[test]
fn a_device_without_the_models_engine_says_why_the_agent_cannot_use_it() {
    let ctx = Ctx::new();
    let mut v = cluster();
    v.update_device("edge", "cpu", |d| {
        d.unusable_backends = vec![
            (
                "llama_cpp".into(),
                "no llama-server: run scripts/setup.sh".into(),
            ),
            ("ort-cuda".into(), "no CUDA".into()),
        ]
    });
    let r = ctx
        .req(StageKind::Generate, "qwen-gguf", GB)
        .with_backends(["llama_cpp"]);
    let e = ctx.explain(&v, &r);
    let cpu = e
        .rejected
        .iter()
        .find(|x| x.node == "edge" && x.device == "cpu")
        .expect("edge/cpu rejected");
    assert_eq!(cpu.reason, RejectReason::NoUsableBackend);
    assert!(
        cpu.detail
            .ends_with("; llama_cpp unusable: no llama-server: run scripts/setup.sh"),
        "only the model's backend is named: {}",
        cpu.detail
    );
}

#[test]
fn an_engine_model_bigger_than_the_gpu_runs_partly_there_scored_by_the_share_it_holds() {
    let ctx = Ctx::new();
    let v = cluster();
    // 12 GB: fits no GPU whole (10 GB free, 1.2 GB headroom), the gpu-box CPU whole.
    let whole_only = ctx.req(StageKind::Generate, "coder-33b", 12 * GB);
    assert_eq!(ctx.place(&v, &whole_only).best().unwrap().device, "cpu");
    // A partial offload may put 8.8 GB of it on the GPU: 73 % there, the rest on the host.
    let r = ctx
        .req(StageKind::Generate, "coder-33b", 12 * GB)
        .with_partial_offload(Some(GB));
    let p = ctx.place(&v, &r);
    let best = p.best().unwrap();
    assert_eq!(best.device, "GPU-aaaa", "{p:?}");
    let share = best.terms.device_share.unwrap();
    assert!((share - 8.8 / 12.0).abs() < 1e-9, "{share}");
    assert!(
        best.terms.partial < 0.0
            && best
                .terms
                .to_string()
                .contains("partial offload: 73% of the model on the device"),
        "{}",
        best.terms
    );
    // Only GPUs take part of a model: a CPU or an NPU holds it whole or not at all.
    assert!(
        p.candidates
            .iter()
            .filter(|c| c.kind != DeviceType::NvidiaGpu)
            .all(|c| c.terms.device_share.is_none())
    );
    // Too big for every CPU: 29 % on the GPU is the one way to run it, at a lower score.
    let huge = ctx
        .req(StageKind::Generate, "coder-100b", 30 * GB)
        .with_partial_offload(Some(GB));
    let p = ctx.place(&v, &huge);
    assert_eq!(
        names(&p),
        vec![("gpu-box".into(), "GPU-aaaa".into())],
        "{p:?}"
    );
    assert!(p.best().unwrap().terms.partial < best.terms.partial);
    // Less room than the least part: refused as before.
    let tiny_room = ctx
        .req(StageKind::Generate, "coder-33b", 12 * GB)
        .with_partial_offload(Some(9 * GB));
    let e = ctx.explain(&v, &tiny_room);
    assert!(
        e.rejected
            .iter()
            .any(|x| x.device == "GPU-aaaa" && matches!(x.reason, RejectReason::DoesNotFit { .. }))
    );
}

#[test]
fn an_npu_generates_with_small_models_only() {
    let ctx = Ctx::new();
    let v = cluster();
    let npu = |r: &PlacementRequest| {
        let e = ctx.explain(&v, r);
        let cand = e.candidates.iter().any(|c| c.device == "npu0");
        let why = e
            .rejected
            .iter()
            .find(|x| x.device == "npu0")
            .map(|x| x.to_string());
        (cand, why)
    };
    // A 1B model at Q4 (0.8 GB): the NPU is a candidate (after the GPU and CPUs).
    let (cand, why) = npu(&ctx.req(StageKind::Generate, "llama-1b", 800_000_000));
    assert!(cand, "{why:?}");
    // A 3B model at f16 (3 GB fits the NPU's 4 GB, but decodes far too slowly there).
    let (cand, why) = npu(&ctx.req(StageKind::Generate, "llama-3b", 3 * GB));
    assert!(!cand);
    let why = why.unwrap();
    assert!(
        why.contains("an NPU generates with small models only: 3000.0 MB > 2500.0 MB"),
        "{why}"
    );
    // Classify and embed models of that size are not affected by the rule.
    let (_, why) = npu(&ctx.req(StageKind::Embed, "big-embedder", 3 * GB));
    assert!(
        why.as_deref()
            .is_none_or(|w| !w.contains("small models only")),
        "{why:?}"
    );
}
