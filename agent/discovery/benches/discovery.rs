//! Full discovery and telemetry refresh on this host (goal: scan < 100 ms), plus a fixture
//! scan, with a baseline (reading `/proc/cpuinfo` alone) measured in the same run.

use std::time::{Duration, Instant};

use switchyard_discovery::{Discovery, DiscoveryConfig};

fn measure(name: &str, iters: u32, mut f: impl FnMut()) -> Duration {
    f(); // warm-up
    let mut samples = Vec::with_capacity(iters as usize);
    for _ in 0..iters {
        let t = Instant::now();
        f();
        samples.push(t.elapsed());
    }
    samples.sort();
    let median = samples[samples.len() / 2];
    let p95 = samples[samples.len() * 95 / 100];
    println!(
        "{name:<34} median {:>9.3} ms   p95 {:>9.3} ms   min {:>9.3} ms  ({iters} runs)",
        median.as_secs_f64() * 1e3,
        p95.as_secs_f64() * 1e3,
        samples[0].as_secs_f64() * 1e3
    );
    median
}

fn main() {
    let baseline = measure("baseline: read /proc/cpuinfo", 200, || {
        std::hint::black_box(std::fs::read_to_string("/proc/cpuinfo").ok());
    });

    let t = Instant::now();
    let mut host = Discovery::new(DiscoveryConfig::host());
    let first = host.scan();
    println!(
        "{:<34} {:>9.3} ms (library loading + first scan, {} devices)",
        "cold: Discovery::new + scan",
        t.elapsed().as_secs_f64() * 1e3,
        first.devices.len()
    );
    let scan = measure("host: scan (warm)", 100, || {
        std::hint::black_box(host.scan());
    });
    let tel = measure("host: telemetry", 200, || {
        std::hint::black_box(host.telemetry(&first));
    });

    let fx = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/discovery/arc-npu-ncs2"
    );
    let mut fixture = Discovery::new(DiscoveryConfig::fixture(fx));
    let inv = fixture.scan();
    measure("fixture arc-npu-ncs2: scan", 100, || {
        std::hint::black_box(fixture.scan());
    });
    measure("fixture arc-npu-ncs2: telemetry", 200, || {
        std::hint::black_box(fixture.telemetry(&inv));
    });

    println!(
        "scan = {:.1}x baseline, telemetry = {:.1}x baseline; scan goal < 100 ms: {}",
        scan.as_secs_f64() / baseline.as_secs_f64(),
        tel.as_secs_f64() / baseline.as_secs_f64(),
        if scan < Duration::from_millis(100) {
            "met"
        } else {
            "NOT met"
        }
    );
}
