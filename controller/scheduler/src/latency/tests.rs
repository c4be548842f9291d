use super::*;

const S: StageKind = StageKind::Embed;

fn ms(x: u64) -> Duration {
    Duration::from_millis(x)
}

#[test]
fn ewma_and_p95_follow_samples() {
    let mut l = LatencyStats::new(LatencyConfig::default());
    assert_eq!(l.ewma(S, "m", "n", "d"), None);
    l.record(S, "m", "n", "d", ms(100));
    assert_eq!(l.ewma(S, "m", "n", "d"), Some(ms(100)));
    l.record(S, "m", "n", "d", ms(200));
    // 0.2 × 200 + 0.8 × 100 = 120
    let e = l.ewma(S, "m", "n", "d").unwrap().as_secs_f64() * 1000.0;
    assert!((e - 120.0).abs() < 1e-6, "{e}");
    let mut l = LatencyStats::new(LatencyConfig::default());
    for i in 1..=100 {
        l.record(S, "m", "n", "d", ms(i));
    }
    assert_eq!(l.p95(S, "m"), Some((ms(95), 100)));
    assert!(l.p95(StageKind::Classify, "m").is_none());
}

#[test]
fn ring_keeps_only_the_window() {
    let cfg = LatencyConfig {
        window: 10,
        ..Default::default()
    };
    let mut l = LatencyStats::new(cfg);
    for _ in 0..10 {
        l.record(S, "m", "n", "d", ms(1_000));
    }
    for _ in 0..10 {
        l.record(S, "m", "n", "d", ms(10));
    }
    assert_eq!(l.p95(S, "m"), Some((ms(10), 10)));
}

#[test]
fn adaptive_timeout_clamps_between_floor_and_ceiling() {
    let mut l = LatencyStats::new(LatencyConfig::default());
    // No samples yet: initial.
    assert_eq!(l.adaptive_timeout(S, "m"), ms(5_000));
    assert_eq!(l.adaptive_timeout(StageKind::Generate, "m"), ms(30_000));
    // Fast model: p95 × 3 = 30 ms → floor 250 ms.
    for _ in 0..20 {
        l.record(S, "fast", "n", "d", ms(10));
    }
    assert_eq!(l.adaptive_timeout(S, "fast"), ms(250));
    // Mid: p95 200 ms × 3 = 600 ms.
    for _ in 0..20 {
        l.record(S, "mid", "n", "d", ms(200));
    }
    assert_eq!(l.adaptive_timeout(S, "mid"), ms(600));
    // Slow: p95 × 3 = 60 s → ceiling 10 s.
    for _ in 0..20 {
        l.record(S, "slow", "n", "d", ms(20_000));
    }
    assert_eq!(l.adaptive_timeout(S, "slow"), ms(10_000));
    // Generation has its own larger floor.
    for _ in 0..20 {
        l.record(StageKind::Generate, "g", "n", "d", ms(100));
    }
    assert_eq!(l.adaptive_timeout(StageKind::Generate, "g"), ms(2_000));
}

#[test]
fn per_device_timeout_uses_the_device_when_it_has_enough_samples() {
    let mut l = LatencyStats::new(LatencyConfig::default());
    for _ in 0..20 {
        l.record(S, "m", "fast", "d", ms(100));
    }
    for _ in 0..5 {
        l.record(S, "m", "slow", "d", ms(1_000));
    }
    // slow has 5 < 10 samples: model-wide p95 (1000 ms among 25) × 3.
    assert_eq!(l.adaptive_timeout_on(S, "m", "slow", "d"), ms(3_000));
    assert_eq!(l.adaptive_timeout_on(S, "m", "fast", "d"), ms(300));
    l.forget_node("fast");
    assert_eq!(l.ewma(S, "m", "fast", "d"), None);
    assert!(l.model(S, "m").unwrap().average_ms().is_some());
}

#[test]
fn a_batch_timeout_scales_with_its_inputs_from_a_per_input_figure() {
    let mut l = LatencyStats::new(LatencyConfig::default());
    for _ in 0..20 {
        l.record(S, "m", "n", "d", ms(100));
    }
    // One input: p95 of the call × 3.
    assert_eq!(l.batch_timeout_on(S, "m", "n", "d", 1), ms(300));
    // 32 inputs learned from single ones: 100 ms per input × 32 × 3, not the 300 ms floor
    // single inputs taught.
    assert_eq!(l.batch_timeout_on(S, "m", "n", "d", 32), ms(9_600));
    // 256 inputs: the ceiling.
    assert_eq!(l.batch_timeout_on(S, "m", "n", "d", 256), ms(10_000));

    // Learned from batches of 32 (400 ms a call, 12.5 ms per input): a single input still
    // gets what one call takes.
    let mut l = LatencyStats::new(LatencyConfig::default());
    for _ in 0..20 {
        l.record_sample(
            S,
            "m",
            "n",
            "d",
            Sample::Batch {
                took: ms(400),
                inputs: 32,
            },
        );
    }
    assert_eq!(l.batch_timeout_on(S, "m", "n", "d", 1), ms(1_200));
    assert_eq!(l.batch_timeout_on(S, "m", "n", "d", 256), ms(9_600));
}

#[test]
fn generation_timeouts_come_from_first_token_and_gaps_not_from_stream_length() {
    let g = StageKind::Generate;
    let mut l = LatencyStats::new(LatencyConfig::default());
    assert_eq!(l.gap_timeout_on("m", "n", "d"), ms(10_000), "initial");
    for _ in 0..20 {
        l.record_sample(
            g,
            "m",
            "n",
            "d",
            Sample::Stream {
                first_token: ms(1_000),
                longest_gap: Some(ms(500)),
            },
        );
    }
    assert_eq!(l.adaptive_timeout_on(g, "m", "n", "d"), ms(3_000));
    assert_eq!(l.gap_timeout_on("m", "n", "d"), ms(1_500));
    // The input count plays no part in a stream's first-token timeout.
    assert_eq!(l.batch_timeout_on(g, "m", "n", "d", 64), ms(3_000));
    // Another device without samples falls back to the model's figures.
    assert_eq!(l.gap_timeout_on("m", "n", "other"), ms(1_500));
}

#[test]
fn config_validation() {
    LatencyConfig::default().validate().unwrap();
    let c = LatencyConfig {
        alpha: 0.0,
        ..Default::default()
    };
    assert_eq!(c.validate(), Err(LatencyConfigError::Alpha(0.0)));
    let mut c = LatencyConfig::default();
    c.generate.floor_ms = 100_000;
    assert!(c.validate().unwrap_err().to_string().contains("generate"));
    let c: LatencyConfig =
        toml::from_str("alpha = 0.5\n[classify]\nk = 2.0\nfloor_ms = 1\nceiling_ms = 9\ninitial_ms = 5\nmin_samples = 1\n")
            .unwrap();
    assert_eq!(c.classify.ceiling_ms, 9);
    assert!(toml::from_str::<LatencyConfig>("alpah = 0.5").is_err());
    let mut c = LatencyConfig::default();
    c.generate_gap.floor_ms = 0;
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("generate_gap")
    );
}
