//! Exponential backoff with jitter — the one delay rule of the project, used by the
//! controller's retries on another device and by the agent's reconnects to the controller.
//!
//! The delay before retry `n` (n = 1 for the second attempt) is drawn from
//! `[0, min(max, base × 2^(n-1))]` ("full jitter"), or from its upper half ("equal jitter"),
//! or is exactly the cap (no jitter). Randomness is injected as a number in `[0, 1)` so
//! callers pick the generator and tests are deterministic.

use std::time::Duration;

use serde::Deserialize;

/// How the delay is randomised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Jitter {
    /// Exactly the exponential cap.
    None,
    /// Uniform in `[0, cap]`: spreads retries best (AWS "full jitter").
    #[default]
    Full,
    /// Uniform in `[cap / 2, cap]`.
    Equal,
}

/// An exponential backoff schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Cap of the first retry's delay.
    pub base: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Randomisation.
    pub jitter: Jitter,
}

impl Backoff {
    /// The exponential cap for retry `retry` (1-based): `min(max, base × 2^(retry-1))`;
    /// zero for retry 0.
    pub fn cap(&self, retry: u32) -> Duration {
        if retry == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(retry - 1).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Delay before retry `retry` (1-based) given a uniform random `unit` in `[0, 1)`
    /// (clamped into that range; NaN counts as 0).
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        let cap = self.cap(retry);
        let r = if unit.is_nan() {
            0.0
        } else {
            unit.clamp(0.0, 1.0)
        };
        match self.jitter {
            Jitter::None => cap,
            Jitter::Full => cap.mul_f64(r),
            Jitter::Equal => cap / 2 + (cap / 2).mul_f64(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(base: u64, max: u64, jitter: Jitter) -> Backoff {
        Backoff {
            base: Duration::from_millis(base),
            max: Duration::from_millis(max),
            jitter,
        }
    }

    #[test]
    fn caps_grow_exponentially_up_to_the_maximum_without_overflow() {
        let b = ms(50, 2_000, Jitter::None);
        let caps: Vec<u64> = (0..8).map(|n| b.delay(n, 0.5).as_millis() as u64).collect();
        assert_eq!(caps, vec![0, 50, 100, 200, 400, 800, 1_600, 2_000]);
        assert_eq!(b.cap(200), Duration::from_millis(2_000));
    }

    #[test]
    fn jittered_delays_stay_within_bounds_and_bad_randomness_is_clamped() {
        let full = ms(50, 2_000, Jitter::Full);
        let equal = ms(50, 2_000, Jitter::Equal);
        for n in 1..12 {
            let cap = full.cap(n);
            for i in 0..=20 {
                let r = i as f64 / 20.0;
                assert!(full.delay(n, r) <= cap);
                let e = equal.delay(n, r);
                assert!(e >= cap / 2 && e <= cap, "equal jitter {e:?} vs {cap:?}");
            }
        }
        assert_eq!(full.delay(3, 7.0), full.cap(3));
        assert_eq!(full.delay(3, -1.0), Duration::ZERO);
        assert_eq!(full.delay(3, f64::NAN), Duration::ZERO);
    }
}
