//! What agents report moves the score: utilisation, temperature, power, queue depth, TOPS;
//! simulated devices and model ↔ backend ↔ precision compatibility filter.

use super::*;
use crate::ScoreWeights;
use crate::circuit::BreakerConfig;
use crate::latency::LatencyConfig;
use crate::view::{DeviceView, NodeView};

const GB: u64 = 1_000_000_000;

fn gpu(id: &str) -> DeviceView {
    let mut d = DeviceView::new(id, DeviceType::NvidiaGpu);
    d.memory_total_bytes = 24 * GB;
    d.memory_free_bytes = 20 * GB;
    d.backends = vec!["ort-cuda".into()];
    d.tops = 284.0;
    d
}

fn place_all(view: &ClusterView, req: &PlacementRequest, policy: &PlacementPolicy) -> Placement {
    let breakers = CircuitBreakers::new(BreakerConfig::default());
    let latency = LatencyStats::new(LatencyConfig::default());
    let p = place(view, req, policy, &breakers, &latency);
    let e = explain(view, req, policy, &breakers, &latency);
    let k = req.top_k.max(1).min(e.candidates.len());
    assert_eq!(p.candidates, e.candidates[..k], "place agrees with explain");
    p
}

fn generate(model_bytes: u64) -> PlacementRequest {
    PlacementRequest::new(StageKind::Generate, "g", model_bytes, Instant::now())
}

/// Two otherwise identical GPUs, the second changed by `edit`: which one wins.
fn winner(edit: impl FnOnce(&mut DeviceView)) -> (String, Placement) {
    let mut b = gpu("b");
    edit(&mut b);
    let view = ClusterView::new(vec![NodeView::new("n", vec![gpu("a"), b])]).unwrap();
    let p = place_all(&view, &generate(GB), &PlacementPolicy::default());
    (p.best().unwrap().device.clone(), p)
}

#[test]
fn utilisation_temperature_power_and_queue_depth_each_move_the_score() {
    // Identical devices: the tie breaks on the id.
    assert_eq!(winner(|_| {}).0, "a");
    // Each reported figure, better on `b`, makes `b` win against a device reporting worse.
    let busy = |d: &mut DeviceView| {
        d.utilization = Some(0.9);
    };
    let (w, p) = winner(|d| d.utilization = Some(0.05));
    assert_eq!(w, "a", "a reports nothing, so it costs nothing: {p:?}");
    let view = ClusterView::new(vec![NodeView::new(
        "n",
        vec![
            {
                let mut a = gpu("a");
                busy(&mut a);
                a
            },
            gpu("b"),
        ],
    )])
    .unwrap();
    let best = place_all(&view, &generate(GB), &PlacementPolicy::default());
    assert_eq!(best.best().unwrap().device, "b", "a is 90% busy");

    // Near its throttle point (85 °C, throttles at 87): backs off.
    let hot = |d: &mut DeviceView| {
        d.temperature_celsius = Some(85.0);
        d.throttle_celsius = Some(87.0);
    };
    let (w, p) = winner(|d| {
        d.temperature_celsius = Some(50.0);
        d.throttle_celsius = Some(87.0);
    });
    assert_eq!(w, "a", "{p:?}");
    let mut a = gpu("a");
    hot(&mut a);
    let view = ClusterView::new(vec![NodeView::new("n", vec![a, gpu("b")])]).unwrap();
    let p = place_all(&view, &generate(GB), &PlacementPolicy::default());
    assert_eq!(p.best().unwrap().device, "b", "a is about to throttle");
    let hot_terms = &p.candidates[1].terms;
    assert!(hot_terms.thermal < PlacementPolicy::default().weights.thermal * 0.2);
    // Without a reported throttle point the policy's default (90 °C) applies.
    let mut a = gpu("a");
    a.temperature_celsius = Some(89.0);
    let view = ClusterView::new(vec![NodeView::new("n", vec![a, gpu("b")])]).unwrap();
    let p = place_all(&view, &generate(GB), &PlacementPolicy::default());
    assert_eq!(p.best().unwrap().device, "b");
    assert_eq!(p.candidates[1].terms.throttle_celsius, 90.0);

    // Power at its cap: no headroom.
    let mut a = gpu("a");
    a.power_watts = Some(440.0);
    a.power_limit_watts = Some(450.0);
    let view = ClusterView::new(vec![NodeView::new("n", vec![a, gpu("b")])]).unwrap();
    let p = place_all(&view, &generate(GB), &PlacementPolicy::default());
    assert_eq!(p.best().unwrap().device, "b", "a has no power headroom");

    // The agent reports requests queued on `a` that this controller did not send.
    let mut a = gpu("a");
    a.queue_depth = 6;
    let view = ClusterView::new(vec![NodeView::new("n", vec![a, gpu("b")])]).unwrap();
    let p = place_all(&view, &generate(GB), &PlacementPolicy::default());
    assert_eq!(p.best().unwrap().device, "b", "a's queue is deep");
    assert_eq!(p.candidates[1].terms.queue_depth, 6);
}

#[test]
fn explain_prints_every_term() {
    let mut d = gpu("a");
    d.utilization = Some(0.25);
    d.temperature_celsius = Some(61.0);
    d.throttle_celsius = Some(87.0);
    d.power_watts = Some(200.0);
    d.power_limit_watts = Some(400.0);
    d.queue_depth = 2;
    let view = ClusterView::new(vec![NodeView::new("n", vec![d])]).unwrap();
    let p = place_all(&view, &generate(GB), &PlacementPolicy::default());
    let c = p.best().unwrap();
    let detail = c.score_detail();
    for part in [
        "kind rank",
        "warm",
        "tops 284.0",
        "free after",
        "queue 2 (sent 0, agent 2)",
        "latency",
        "utilisation 25%",
        "temperature 61 °C (throttles at 87)",
        "power 200/400 W",
    ] {
        assert!(detail.contains(part), "{part}: {detail}");
    }
    let t = &c.terms;
    let w = PlacementPolicy::default().weights;
    assert!((t.utilization - w.utilization * 0.75).abs() < 1e-9);
    assert!((t.power - w.power * 0.5).abs() < 1e-9);
    assert!((t.thermal - w.thermal).abs() < 1e-9, "26 °C below: full");
    assert!(
        (c.score - t.total()).abs() < 1e-9,
        "the score is the sum of its terms"
    );
}

#[test]
fn tops_is_on_a_log_scale_that_still_separates_the_fastest_devices() {
    let w = ScoreWeights::default();
    let term = |tops: f64| filters::tops_term(w.tops, w.tops_ref, tops);
    let h100 = term(1979.0);
    let rtx3090 = term(284.0);
    let cpu = term(1.0);
    assert!((h100 / w.tops - 1979f64.ln_1p() / 2000f64.ln_1p()).abs() < 1e-12);
    assert!((rtx3090 / w.tops - 0.744).abs() < 0.01, "{rtx3090}");
    // tops / (tops + 50) gave 0.975 vs 0.85: a 0.125 gap; now a quarter of the weight.
    assert!(h100 - rtx3090 > 0.25 * w.tops, "{h100} vs {rtx3090}");
    assert!(cpu < 0.1 * w.tops && cpu > 0.0);
    assert_eq!(term(0.0), 0.0);
    assert!(term(10_000.0) <= w.tops, "capped at its weight");
    // Between two GPUs of one kind the faster one wins on TOPS alone.
    let (w, _) = winner(|d| d.tops = 1979.0);
    assert_eq!(w, "b");
}

#[test]
fn simulated_devices_are_never_chosen_unless_the_policy_allows_them() {
    let mut sim = gpu("fixture-gpu");
    sim.simulated = true;
    let mut cpu = DeviceView::new("cpu", DeviceType::Cpu);
    cpu.memory_total_bytes = 64 * GB;
    cpu.memory_free_bytes = 60 * GB;
    cpu.backends = vec!["ort-cpu".into()];
    let view = ClusterView::new(vec![NodeView::new("n", vec![sim, cpu])]).unwrap();
    let policy = PlacementPolicy::default();
    let p = place_all(&view, &generate(GB), &policy);
    assert_eq!(
        p.best().unwrap().device,
        "cpu",
        "the real CPU, not the fixture GPU"
    );
    let breakers = CircuitBreakers::new(BreakerConfig::default());
    let latency = LatencyStats::new(LatencyConfig::default());
    let e = explain(&view, &generate(GB), &policy, &breakers, &latency);
    assert_eq!(e.rejected[0].reason, RejectReason::SimulatedNotAllowed);
    let fixtures = PlacementPolicy {
        allow_simulated: true,
        ..Default::default()
    };
    let p = place_all(&view, &generate(GB), &fixtures);
    assert_eq!(p.best().unwrap().device, "fixture-gpu");
}

#[test]
fn only_backends_the_model_allows_at_its_precision_are_usable() {
    let mut cpu = DeviceView::new("cpu", DeviceType::Cpu);
    cpu.memory_total_bytes = 64 * GB;
    cpu.memory_free_bytes = 60 * GB;
    cpu.backends = vec!["openvino".into(), "ort-cpu".into()];
    cpu.precisions = vec![
        ("openvino".into(), vec![Precision::F32, Precision::Bf16]),
        ("ort-cpu".into(), vec![Precision::F32]),
    ];
    let mut old = DeviceView::new("cpu", DeviceType::Cpu);
    old.memory_total_bytes = 64 * GB;
    old.memory_free_bytes = 60 * GB;
    old.backends = vec!["openvino".into()];
    old.precisions = vec![("openvino".into(), vec![Precision::F32])];
    let view = ClusterView::new(vec![
        NodeView::new("amx", vec![cpu]),
        NodeView::new("avx2", vec![old]),
    ])
    .unwrap();
    let policy = PlacementPolicy::default();
    let embed = |p: Precision| {
        PlacementRequest::new(StageKind::Embed, "e", GB, Instant::now()).with_precision(p)
    };
    // bf16: only the AMX host's OpenVINO computes at it.
    let p = place_all(&view, &embed(Precision::Bf16), &policy);
    assert_eq!(p.candidates.len(), 1);
    let best = p.best().unwrap();
    assert_eq!(
        (best.node.as_str(), best.backend.as_str()),
        ("amx", "openvino")
    );
    let breakers = CircuitBreakers::new(BreakerConfig::default());
    let latency = LatencyStats::new(LatencyConfig::default());
    let e = explain(&view, &embed(Precision::Bf16), &policy, &breakers, &latency);
    assert_eq!(e.rejected[0].reason, RejectReason::NoUsableBackend);
    assert!(
        e.rejected[0].detail.contains("openvino(f32)") && e.rejected[0].detail.contains("at bf16")
    );
    // f32 runs on both; a model limited to ort-cpu (registry `backends`) only on the AMX host.
    assert_eq!(
        place_all(&view, &embed(Precision::F32), &policy)
            .candidates
            .len(),
        2
    );
    let ort_only = embed(Precision::F32).with_backends(["ort-cpu"]);
    let p = place_all(&view, &ort_only, &policy);
    assert_eq!(p.candidates.len(), 1);
    assert_eq!(p.best().unwrap().backend, "ort-cpu");
}

#[test]
fn a_request_using_tools_or_structured_output_is_placed_only_on_an_engine() {
    let mut engine = DeviceView::new("endpoint:llama", DeviceType::Cpu);
    engine.backends = vec!["openai".into()];
    engine.engine_models = Some(vec!["g".into()]);
    let view = ClusterView::new(vec![NodeView::new("n", vec![gpu("a"), engine])]).unwrap();
    let policy = PlacementPolicy::default();
    // Without tools the GPU's native decoder wins.
    let p = place_all(&view, &generate(GB), &policy);
    assert_eq!(p.best().unwrap().device, "a");
    // With them only the engine is a candidate, and the GPU says why not.
    let req = generate(GB).needing_engine(true);
    let p = place_all(&view, &req, &policy);
    assert_eq!(p.candidates.len(), 1, "{:?}", p.candidates);
    assert_eq!(p.best().unwrap().device, "endpoint:llama");
    let breakers = CircuitBreakers::new(BreakerConfig::default());
    let latency = LatencyStats::new(LatencyConfig::default());
    let e = explain(&view, &req, &policy, &breakers, &latency);
    let gpu_reason = e.rejected.iter().find(|r| r.device == "a").unwrap();
    assert_eq!(gpu_reason.reason, RejectReason::NeedsEngine);
}

#[test]
fn a_warm_device_keeps_the_work_until_its_queue_fills_then_an_idle_cold_one_wins() {
    let req = generate(GB);
    let view = |depth: u32| {
        let mut a = gpu("a");
        a.resident_models = vec!["g".into()];
        a.in_flight = depth;
        ClusterView::new(vec![NodeView::new("n", vec![a, gpu("b")])]).unwrap()
    };
    for (depth, expect) in [(0, "a"), (4, "a"), (64, "b")] {
        let v = view(depth);
        let p = place_all(&v, &req, &PlacementPolicy::default());
        let best = p.best().unwrap();
        assert_eq!(best.device, expect, "in flight {depth}: {p:?}");
        if depth == 64 {
            assert!(!best.warm, "the idle device loads the model");
        }
    }
}

#[test]
fn a_model_that_may_run_at_f16_is_placed_on_an_npu_and_one_that_may_not_is_not() {
    let mut npu = DeviceView::new("npu0", DeviceType::IntelNpu);
    npu.memory_total_bytes = 8 * GB;
    npu.memory_free_bytes = 8 * GB;
    npu.backends = vec!["openvino".into()];
    npu.precisions = vec![("openvino".into(), vec![Precision::F16])];
    let mut cpu = DeviceView::new("cpu", DeviceType::Cpu);
    cpu.memory_total_bytes = 64 * GB;
    cpu.memory_free_bytes = 60 * GB;
    cpu.backends = vec!["openvino".into()];
    cpu.precisions = vec![("openvino".into(), vec![Precision::F32])];
    let view = ClusterView::new(vec![NodeView::new("meteor", vec![npu, cpu])]).unwrap();
    let policy = PlacementPolicy::default();
    let embed = || PlacementRequest::new(StageKind::Embed, "minilm", GB, Instant::now());
    // f32 only: the NPU cannot run it.
    let p = place_all(&view, &embed().with_precision(Precision::F32), &policy);
    assert_eq!(p.best().unwrap().device, "cpu");
    assert!(p.candidates.iter().all(|c| c.device != "npu0"));
    let breakers = CircuitBreakers::new(BreakerConfig::default());
    let latency = LatencyStats::new(LatencyConfig::default());
    let e = explain(
        &view,
        &embed().with_precisions(&[Precision::F32, Precision::Bf16]),
        &policy,
        &breakers,
        &latency,
    );
    let npu = e.rejected.iter().find(|r| r.device == "npu0").unwrap();
    assert!(
        npu.detail.contains("openvino(f16)") && npu.detail.contains("at f32 or bf16"),
        "{}",
        npu.detail
    );
    // f32, also f16: the NPU, first by the embed preference.
    let p = place_all(
        &view,
        &embed().with_precisions(&[Precision::F32, Precision::F16]),
        &policy,
    );
    assert_eq!(p.best().unwrap().device, "npu0");
    assert_eq!(p.candidates.len(), 2);
}
