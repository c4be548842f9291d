//! Circuit breakers per (node, device).
//!
//! * **Closed**: requests flow; failures are remembered for `window`. `failure_threshold`
//!   consecutive failures inside the window open the circuit: a success clears the count, so
//!   sporadic failures between successes never add up to an open circuit.
//! * **Open**: the device is skipped by placement until `cooldown` has passed.
//! * **Half-open** (cooldown over): one probe request may go. [`CircuitBreakers::on_dispatch`]
//!   marks it in flight; its success closes the circuit, its failure reopens it. A probe whose
//!   outcome never arrives stops blocking after another `cooldown`.
//!
//! Time is always passed in (`now: Instant`), so tests are deterministic without sleeping.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::fxhash::FxHashMap;

/// Breaker thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Failures within `window_ms` that open the circuit (≥ 1).
    pub failure_threshold: u32,
    /// Sliding window for counting failures, milliseconds.
    pub window_ms: u64,
    /// Time an open circuit waits before allowing a probe, milliseconds.
    pub cooldown_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            window_ms: 30_000,
            cooldown_ms: 10_000,
        }
    }
}

impl BreakerConfig {
    fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }
    fn cooldown(&self) -> Duration {
        Duration::from_millis(self.cooldown_ms)
    }
}

/// The state of one breaker as seen at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Requests flow.
    Closed,
    /// Requests are refused until `retry_in` has passed.
    Open {
        /// Time left before a probe is allowed.
        retry_in: Duration,
    },
    /// Cooldown over: one probe may go (none when `probe_in_flight`).
    HalfOpen {
        /// A probe was dispatched and has not reported yet.
        probe_in_flight: bool,
    },
}

/// Whether placement may use a device now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed circuit.
    Allow,
    /// Half-open: this request would be the probe.
    Probe,
    /// Open, or half-open with its probe in flight.
    Deny(CircuitState),
}

#[derive(Debug, Clone)]
enum Breaker {
    Closed { failures: VecDeque<Instant> },
    Open { since: Instant },
    HalfOpen { probe_since: Option<Instant> },
}

/// All breakers, keyed by node name then device id. Devices never seen are closed.
#[derive(Debug, Clone, Default)]
pub struct CircuitBreakers {
    config: BreakerConfig,
    map: FxHashMap<String, FxHashMap<String, Breaker>>,
    /// Breakers not in the closed state (lets placement skip lookups when 0).
    not_closed: usize,
    /// When each device last answered a request.
    answered: FxHashMap<String, FxHashMap<String, Instant>>,
}

impl CircuitBreakers {
    /// Empty set of breakers with these thresholds (a threshold of 0 is treated as 1).
    pub fn new(mut config: BreakerConfig) -> Self {
        config.failure_threshold = config.failure_threshold.max(1);
        CircuitBreakers {
            config,
            map: FxHashMap::default(),
            not_closed: 0,
            answered: FxHashMap::default(),
        }
    }

    /// The thresholds.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// `true` when every breaker is closed (placement then skips per-device lookups).
    pub fn all_closed(&self) -> bool {
        self.not_closed == 0
    }

    /// State of a device's breaker at `now`.
    pub fn state(&self, node: &str, device: &str, now: Instant) -> CircuitState {
        match self.map.get(node).and_then(|m| m.get(device)) {
            None | Some(Breaker::Closed { .. }) => CircuitState::Closed,
            Some(Breaker::Open { since }) => {
                let until = *since + self.config.cooldown();
                if now >= until {
                    CircuitState::HalfOpen {
                        probe_in_flight: false,
                    }
                } else {
                    CircuitState::Open {
                        retry_in: until - now,
                    }
                }
            }
            Some(Breaker::HalfOpen { probe_since }) => CircuitState::HalfOpen {
                probe_in_flight: probe_since
                    .is_some_and(|t| now.saturating_duration_since(t) < self.config.cooldown()),
            },
        }
    }

    /// Whether placement may use the device at `now`.
    pub fn admission(&self, node: &str, device: &str, now: Instant) -> Admission {
        match self.state(node, device, now) {
            CircuitState::Closed => Admission::Allow,
            CircuitState::HalfOpen {
                probe_in_flight: false,
            } => Admission::Probe,
            s => Admission::Deny(s),
        }
    }

    /// Call when a request is actually sent to the device: in half-open state it becomes the
    /// probe, and placement refuses the device until the probe reports.
    pub fn on_dispatch(&mut self, node: &str, device: &str, now: Instant) {
        if let CircuitState::HalfOpen {
            probe_in_flight: false,
        } = self.state(node, device, now)
            && let Some(b) = self.map.get_mut(node).and_then(|m| m.get_mut(device))
        {
            *b = Breaker::HalfOpen {
                probe_since: Some(now),
            };
        }
    }

    /// A request on the device succeeded: a half-open circuit closes; a closed one forgets
    /// its failures.
    pub fn record_success(&mut self, node: &str, device: &str, now: Instant) {
        // Every success passes here: allocate the keys only for a device seen the first time.
        match self.answered.get_mut(node).and_then(|m| m.get_mut(device)) {
            Some(last) => *last = (*last).max(now),
            None => {
                self.answered
                    .entry(node.to_owned())
                    .or_default()
                    .insert(device.to_owned(), now);
            }
        }
        let half_open = matches!(self.state(node, device, now), CircuitState::HalfOpen { .. });
        let Some(b) = self.map.get_mut(node).and_then(|m| m.get_mut(device)) else {
            return;
        };
        match b {
            _ if half_open => {
                *b = Breaker::Closed {
                    failures: VecDeque::new(),
                };
                self.not_closed -= 1;
            }
            // Closed: the device works; earlier failures no longer count.
            Breaker::Closed { failures } => failures.clear(),
            // Open (cooldown not over): a straggler dispatched before the circuit opened
            // proves nothing.
            _ => {}
        }
    }

    /// Whether the device answered a request at or after `since`. A request that timed out
    /// on a device that answered others meanwhile waited in its queue (congestion under
    /// load): that is not a fault of the device, and charging it would open the circuit of
    /// a device that works, turning a slow moment into refusals for everyone.
    pub fn answered_since(&self, node: &str, device: &str, since: Instant) -> bool {
        self.answered
            .get(node)
            .and_then(|m| m.get(device))
            .is_some_and(|t| *t >= since)
    }

    /// A request on the device failed (error or timeout): may open the circuit.
    pub fn record_failure(&mut self, node: &str, device: &str, now: Instant) {
        let cfg = self.config;
        let state = self.state(node, device, now);
        let b = self
            .map
            .entry(node.to_owned())
            .or_default()
            .entry(device.to_owned())
            .or_insert_with(|| Breaker::Closed {
                failures: VecDeque::new(),
            });
        let was_closed = matches!(b, Breaker::Closed { .. });
        let open = match (&mut *b, state) {
            (Breaker::Closed { failures }, _) => {
                while failures
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) >= cfg.window())
                {
                    failures.pop_front();
                }
                failures.push_back(now);
                failures.len() >= cfg.failure_threshold as usize
            }
            // The probe (or any request once cooldown is over) failed: open again.
            (_, CircuitState::HalfOpen { .. }) => true,
            // Already open: keep the original cooldown.
            (_, _) => false,
        };
        if open {
            *b = Breaker::Open { since: now };
            if was_closed {
                self.not_closed += 1;
            }
        }
    }

    /// Forgets every breaker of a node (it left the cluster).
    pub fn forget_node(&mut self, node: &str) {
        self.answered.remove(node);
        if let Some(m) = self.map.remove(node) {
            self.not_closed -= m
                .values()
                .filter(|b| !matches!(b, Breaker::Closed { .. }))
                .count();
        }
    }
}

#[cfg(test)]
mod tests;
