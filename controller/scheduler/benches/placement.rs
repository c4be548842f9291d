//! Placement decision latency for 1,000 nodes × 4 devices (mixed kinds, some models resident,
//! some devices full, a few unhealthy / lost / with open circuits), against a naive baseline
//! in the same run: evaluate every device, build every explanation string, sort everything
//! (that is `explain()` plus each candidate's `score_detail()`).
//!
//! Run: `cargo bench -p switchyard-scheduler --bench placement` (goal: p99 < 50 µs).

use std::hint::black_box;
use std::time::{Duration, Instant};

use switchyard_backend_core::{DeviceType, StageKind};
use switchyard_scheduler::{
    BreakerConfig, CircuitBreakers, ClusterView, DeviceView, LatencyConfig, LatencyStats, NodeView,
    PlacementPolicy, PlacementRequest, explain, place,
};

const GB: u64 = 1_000_000_000;
const NODES: usize = 1_000;

/// xorshift64: deterministic cluster.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const MODELS: [(&str, StageKind, u64); 3] = [
    ("router", StageKind::Classify, 60_000_000),
    ("minilm-l6-v2", StageKind::Embed, 60_000_000),
    ("smollm2-135m", StageKind::Generate, 750_000_000),
];

fn device(rng: &mut Rng, id: &str, kind: DeviceType) -> DeviceView {
    let mut d = DeviceView::new(id, kind);
    let (total, tops, backends): (u64, f64, &[&str]) = match kind {
        DeviceType::Cpu => (64 * GB, 1.0, &["openvino", "ort-cpu"]),
        DeviceType::NvidiaGpu => (
            [12, 16, 32][rng.next(3) as usize] * GB,
            [284.0, 351.0, 838.0][rng.next(3) as usize],
            &["ort-cuda", "ort-tensorrt"],
        ),
        DeviceType::IntelGpu => (16 * GB, 262.0, &["openvino", "ort-openvino"]),
        DeviceType::IntelNpu => (8 * GB, 11.0, &["openvino"]),
        DeviceType::Ncs2 => (GB / 2, 1.0, &["openvino"]),
        DeviceType::VulkanGpu => (16 * GB, 0.0, &["llama_cpp"]),
    };
    d.memory_total_bytes = total;
    // 1 device in 8 is (nearly) full.
    d.memory_free_bytes = if rng.next(8) == 0 {
        total / 50
    } else {
        total / 4 + rng.next(total / 2)
    };
    d.tops = tops;
    if rng.next(3) == 0 {
        d.measured_tops = Some(tops * (0.5 + rng.next(50) as f64 / 100.0));
    }
    d.backends = backends.iter().map(|s| s.to_string()).collect();
    d.healthy = rng.next(50) != 0;
    d.in_flight = match d.max_concurrency {
        0 => rng.next(6) as u32,
        m => rng.next(m as u64 + 1) as u32,
    };
    for (model, _, _) in MODELS {
        if rng.next(4) == 0 {
            d.resident_models.push(model.to_owned());
        }
    }
    d
}

fn cluster(rng: &mut Rng) -> ClusterView {
    let mut nodes = Vec::with_capacity(NODES);
    for n in 0..NODES {
        let accel = match rng.next(3) {
            0 => DeviceType::NvidiaGpu,
            1 => DeviceType::IntelGpu,
            _ => DeviceType::NvidiaGpu,
        };
        let edge = if rng.next(2) == 0 {
            DeviceType::IntelNpu
        } else {
            DeviceType::Ncs2
        };
        let devices = vec![
            device(rng, "cpu", DeviceType::Cpu),
            device(rng, "accel0", accel),
            device(rng, "accel1", accel),
            device(rng, "edge0", edge),
        ];
        let mut node = NodeView::new(format!("node-{n:04}"), devices);
        node.ready = rng.next(100) != 0;
        nodes.push(node);
    }
    ClusterView::new(nodes).expect("unique names")
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let idx = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx].as_secs_f64() * 1e6
}

fn measure(iters: usize, mut f: impl FnMut(usize)) -> (f64, f64) {
    for i in 0..iters / 10 {
        f(i); // warm-up
    }
    let mut samples = Vec::with_capacity(iters);
    for i in 0..iters {
        let t = Instant::now();
        f(i);
        samples.push(t.elapsed());
    }
    samples.sort();
    (percentile(&samples, 0.50), percentile(&samples, 0.99))
}

fn main() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let t = Instant::now();
    let mut view = cluster(&mut rng);
    let build_ms = t.elapsed().as_secs_f64() * 1e3;
    let policy = PlacementPolicy::default();
    let now = Instant::now();

    let mut breakers = CircuitBreakers::new(BreakerConfig::default());
    for _ in 0..20 {
        let node = format!("node-{:04}", rng.next(NODES as u64));
        for _ in 0..5 {
            breakers.record_failure(&node, "accel0", now);
        }
    }
    let mut latency = LatencyStats::new(LatencyConfig::default());
    for _ in 0..20_000 {
        let (model, stage, _) = MODELS[rng.next(3) as usize];
        let node = format!("node-{:04}", rng.next(NODES as u64));
        let dev = ["cpu", "accel0", "accel1", "edge0"][rng.next(4) as usize];
        latency.record(
            stage,
            model,
            &node,
            dev,
            Duration::from_micros(500 + rng.next(50_000)),
        );
    }

    println!(
        "cluster: {} nodes, {} devices (built in {build_ms:.2} ms)",
        view.nodes().len(),
        view.device_count()
    );
    let requests: Vec<PlacementRequest> = MODELS
        .iter()
        .map(|(m, s, mem)| PlacementRequest::new(*s, *m, *mem, now))
        .collect();

    // Same answer from both paths.
    for r in &requests {
        let fast = place(&view, r, &policy, &breakers, &latency);
        let full = explain(&view, r, &policy, &breakers, &latency);
        assert_eq!(fast.candidates, full.candidates[..fast.candidates.len()]);
        let b = fast.best().expect("a candidate");
        println!(
            "{:<8} {:<13} → {}/{} ({:?}, {}), {} eligible, {} rejected",
            r.stage.as_str(),
            r.model,
            b.node,
            b.device,
            b.kind,
            b.backend,
            full.candidates.len(),
            full.rejected.len()
        );
    }

    const ITERS: usize = 3_000;
    println!(
        "\n{:<10} {:>12} {:>12} {:>14} {:>14} {:>8}",
        "stage", "place p50 µs", "place p99 µs", "naive p50 µs", "naive p99 µs", "p50 ×"
    );
    for r in &requests {
        let (p50, p99) = measure(ITERS, |_| {
            black_box(place(
                black_box(&view),
                black_box(r),
                &policy,
                &breakers,
                &latency,
            ));
        });
        let (n50, n99) = measure(ITERS / 10, |_| {
            let e = explain(black_box(&view), black_box(r), &policy, &breakers, &latency);
            let details: Vec<String> = e.candidates.iter().map(|c| c.score_detail()).collect();
            let reasons: Vec<String> = e.rejected.iter().map(|x| x.to_string()).collect();
            black_box((e, details, reasons));
        });
        println!(
            "{:<10} {:>12.1} {:>12.1} {:>14.1} {:>14.1} {:>8.1}",
            r.stage.as_str(),
            p50,
            p99,
            n50,
            n99,
            n50 / p50
        );
    }

    // Harder case: no kind preference, so whole kinds cannot be skipped.
    let flat = PlacementPolicy {
        weights: switchyard_scheduler::ScoreWeights {
            kind_step: 0.0,
            ..Default::default()
        },
        ..Default::default()
    };
    let (f50, f99) = measure(ITERS, |_| {
        black_box(place(
            &view,
            black_box(&requests[2]),
            &flat,
            &breakers,
            &latency,
        ));
    });
    println!(
        "\ngenerate with kind_step = 0 (no per-kind pruning): p50 {f50:.1} µs, p99 {f99:.1} µs"
    );

    // Heartbeat-sized update: one device's telemetry, in place.
    let (u50, u99) = measure(ITERS, |i| {
        let node = format!("node-{:04}", i % NODES);
        view.update_device(&node, "accel0", |d| {
            d.in_flight = (i % 4) as u32;
            d.memory_free_bytes = d.memory_total_bytes / 2;
        });
    });
    println!("update_device (one heartbeat): p50 {u50:.2} µs, p99 {u99:.2} µs");
    // Placement with a fresh request (retry path: one exclusion).
    let retry = requests[2].clone().excluding("node-0001", "accel0");
    let (r50, r99) = measure(ITERS, |_| {
        black_box(place(
            &view,
            black_box(&retry),
            &policy,
            &breakers,
            &latency,
        ));
    });
    println!("place with an exclusion (retry): p50 {r50:.1} µs, p99 {r99:.1} µs");
}
