use super::*;

fn cfg() -> BreakerConfig {
    BreakerConfig {
        failure_threshold: 3,
        window_ms: 1_000,
        cooldown_ms: 5_000,
    }
}

#[test]
fn opens_after_n_failures_within_the_window() {
    let t0 = Instant::now();
    let mut b = CircuitBreakers::new(cfg());
    b.record_failure("n", "d", t0);
    b.record_failure("n", "d", t0 + Duration::from_millis(100));
    assert_eq!(b.state("n", "d", t0), CircuitState::Closed);
    assert!(b.all_closed());
    b.record_failure("n", "d", t0 + Duration::from_millis(200));
    assert_eq!(
        b.state("n", "d", t0 + Duration::from_millis(1_200)),
        CircuitState::Open {
            retry_in: Duration::from_millis(4_000)
        }
    );
    assert!(!b.all_closed());
    assert!(matches!(
        b.admission("n", "d", t0 + Duration::from_millis(300)),
        Admission::Deny(CircuitState::Open { .. })
    ));
    // Other devices are unaffected.
    assert_eq!(b.admission("n", "other", t0), Admission::Allow);
}

#[test]
fn a_success_in_a_closed_circuit_clears_its_failure_count() {
    let t0 = Instant::now();
    let mut b = CircuitBreakers::new(cfg());
    let at = |ms| t0 + Duration::from_millis(ms);
    // fail, fail, success, fail, fail: never three failures in a row, all inside the window.
    b.record_failure("n", "d", at(0));
    b.record_failure("n", "d", at(10));
    b.record_success("n", "d", at(20));
    b.record_failure("n", "d", at(30));
    b.record_failure("n", "d", at(40));
    assert_eq!(b.state("n", "d", at(50)), CircuitState::Closed);
    // A third failure in a row opens it.
    b.record_failure("n", "d", at(50));
    assert!(matches!(
        b.state("n", "d", at(60)),
        CircuitState::Open { .. }
    ));
}

#[test]
fn failures_outside_the_window_do_not_count() {
    let t0 = Instant::now();
    let mut b = CircuitBreakers::new(cfg());
    for i in 0..10 {
        b.record_failure("n", "d", t0 + Duration::from_millis(600 * i));
    }
    assert_eq!(
        b.state("n", "d", t0 + Duration::from_secs(6)),
        CircuitState::Closed
    );
}

#[test]
fn half_open_allows_one_probe_and_success_closes() {
    let t0 = Instant::now();
    let mut b = CircuitBreakers::new(cfg());
    for _ in 0..3 {
        b.record_failure("n", "d", t0);
    }
    let t1 = t0 + Duration::from_secs(5);
    assert_eq!(b.admission("n", "d", t1), Admission::Probe);
    b.on_dispatch("n", "d", t1);
    assert_eq!(
        b.admission("n", "d", t1 + Duration::from_millis(10)),
        Admission::Deny(CircuitState::HalfOpen {
            probe_in_flight: true
        })
    );
    b.record_success("n", "d", t1 + Duration::from_millis(20));
    assert_eq!(b.state("n", "d", t1), CircuitState::Closed);
    assert!(b.all_closed());
}

#[test]
fn failed_probe_reopens_and_lost_probe_expires() {
    let t0 = Instant::now();
    let mut b = CircuitBreakers::new(cfg());
    for _ in 0..3 {
        b.record_failure("n", "d", t0);
    }
    let t1 = t0 + Duration::from_secs(6);
    b.on_dispatch("n", "d", t1);
    b.record_failure("n", "d", t1);
    assert_eq!(
        b.state("n", "d", t1 + Duration::from_secs(1)),
        CircuitState::Open {
            retry_in: Duration::from_secs(4)
        }
    );
    // Probe dispatched, never reports: after another cooldown a new probe may go.
    let t2 = t1 + Duration::from_secs(5);
    b.on_dispatch("n", "d", t2);
    assert!(matches!(
        b.admission("n", "d", t2 + Duration::from_secs(1)),
        Admission::Deny(_)
    ));
    assert_eq!(
        b.admission("n", "d", t2 + Duration::from_secs(5)),
        Admission::Probe
    );
    // A straggler success while open does not close it.
    let mut b = CircuitBreakers::new(cfg());
    for _ in 0..3 {
        b.record_failure("n", "d", t0);
    }
    b.record_success("n", "d", t0 + Duration::from_secs(1));
    assert!(matches!(
        b.state("n", "d", t0 + Duration::from_secs(1)),
        CircuitState::Open { .. }
    ));
    b.forget_node("n");
    assert!(b.all_closed());
    assert_eq!(b.state("n", "d", t0), CircuitState::Closed);
}

#[test]
fn a_device_that_answered_since_a_dispatch_is_known_to_be_alive() {
    let t0 = Instant::now();
    let mut b = CircuitBreakers::new(cfg());
    assert!(!b.answered_since("n", "d", t0), "never answered");
    b.record_success("n", "d", t0 + Duration::from_millis(50));
    assert!(
        b.answered_since("n", "d", t0),
        "answered after the dispatch at t0"
    );
    assert!(!b.answered_since("n", "d", t0 + Duration::from_millis(60)));
    assert!(!b.answered_since("n", "other", t0), "per device");
    // A late report of an older success does not move the last answer back.
    b.record_success("n", "d", t0);
    assert!(b.answered_since("n", "d", t0 + Duration::from_millis(50)));
    b.forget_node("n");
    assert!(!b.answered_since("n", "d", t0));
}
