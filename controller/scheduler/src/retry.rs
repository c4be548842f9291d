//! Retry with exponential backoff and jitter.
//!
//! The delay before retry `n` (n = 1 for the second attempt) is drawn from
//! `[0, min(max_delay, base_delay × 2^(n-1))]` ("full jitter"), or from its upper half
//! ("equal jitter"), or is exactly the cap (no jitter). Randomness is injected as a number in
//! `[0, 1)` so callers pick the generator and tests are deterministic. Retries go to another
//! device: the caller adds the failed (node, device) to [`crate::PlacementRequest::exclude`].

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

/// Retry settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Cap of the first retry's delay, milliseconds.
    pub base_delay_ms: u64,
    /// Largest delay, milliseconds.
    pub max_delay_ms: u64,
    /// Randomisation.
    pub jitter: Jitter,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay_ms: 50,
            max_delay_ms: 2_000,
            jitter: Jitter::Full,
        }
    }
}

/// A retry setting out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryPolicyError {
    /// `max_attempts` is 0.
    #[error("retry max_attempts must be at least 1")]
    NoAttempts,
    /// `base_delay_ms` above `max_delay_ms`.
    #[error("retry base_delay_ms ({base}) is above max_delay_ms ({max})")]
    BaseAboveMax {
        /// base_delay_ms.
        base: u64,
        /// max_delay_ms.
        max: u64,
    },
}

impl RetryPolicy {
    /// Checks ranges; call after deserialising.
    pub fn validate(&self) -> Result<(), RetryPolicyError> {
        if self.max_attempts == 0 {
            return Err(RetryPolicyError::NoAttempts);
        }
        if self.base_delay_ms > self.max_delay_ms {
            return Err(RetryPolicyError::BaseAboveMax {
                base: self.base_delay_ms,
                max: self.max_delay_ms,
            });
        }
        Ok(())
    }

    /// Whether another attempt is allowed after `attempts_made` attempts.
    pub fn should_retry(&self, attempts_made: u32) -> bool {
        attempts_made < self.max_attempts
    }

    /// The exponential cap for retry `retry` (1-based): `min(max, base × 2^(retry-1))`;
    /// zero for retry 0.
    pub fn cap(&self, retry: u32) -> Duration {
        if retry == 0 {
            return Duration::ZERO;
        }
        let factor = 1u64.checked_shl(retry - 1).unwrap_or(u64::MAX);
        let ms = self
            .base_delay_ms
            .saturating_mul(factor)
            .min(self.max_delay_ms);
        Duration::from_millis(ms)
    }

    /// Delay before retry `retry` (1-based) given a uniform random `rng_value` in `[0, 1)`
    /// (clamped into that range; NaN counts as 0).
    pub fn delay(&self, retry: u32, rng_value: f64) -> Duration {
        let cap = self.cap(retry);
        let r = if rng_value.is_nan() {
            0.0
        } else {
            rng_value.clamp(0.0, 1.0)
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

    #[test]
    fn caps_grow_exponentially_up_to_the_maximum() {
        let p = RetryPolicy {
            jitter: Jitter::None,
            ..Default::default()
        };
        let caps: Vec<u64> = (0..8).map(|n| p.delay(n, 0.5).as_millis() as u64).collect();
        assert_eq!(caps, vec![0, 50, 100, 200, 400, 800, 1_600, 2_000]);
        assert_eq!(p.cap(200), Duration::from_millis(2_000), "no overflow");
    }

    #[test]
    fn jittered_delays_stay_within_bounds() {
        let full = RetryPolicy::default();
        let equal = RetryPolicy {
            jitter: Jitter::Equal,
            ..Default::default()
        };
        for n in 1..12 {
            let cap = full.cap(n);
            for i in 0..=20 {
                let r = i as f64 / 20.0;
                let d = full.delay(n, r);
                assert!(d <= cap, "retry {n} r {r}: {d:?} > {cap:?}");
                let e = equal.delay(n, r);
                assert!(e >= cap / 2 && e <= cap, "equal jitter {e:?} vs {cap:?}");
            }
            assert_eq!(full.delay(n, 0.0), Duration::ZERO);
            assert_eq!(full.delay(n, 0.5), cap.mul_f64(0.5));
        }
        // Out-of-range randomness is clamped, never panics.
        assert_eq!(full.delay(3, 7.0), full.cap(3));
        assert_eq!(full.delay(3, -1.0), Duration::ZERO);
        assert_eq!(full.delay(3, f64::NAN), Duration::ZERO);
    }

    #[test]
    fn attempts_and_validation() {
        let p = RetryPolicy::default();
        assert!(p.should_retry(1) && p.should_retry(2));
        assert!(!p.should_retry(3));
        p.validate().unwrap();
        let bad = RetryPolicy {
            max_attempts: 0,
            ..Default::default()
        };
        assert_eq!(bad.validate(), Err(RetryPolicyError::NoAttempts));
        let bad = RetryPolicy {
            base_delay_ms: 5_000,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("5000"));
        let p: RetryPolicy = toml::from_str("max_attempts = 5\njitter = \"equal\"").unwrap();
        assert_eq!((p.max_attempts, p.jitter), (5, Jitter::Equal));
        assert!(toml::from_str::<RetryPolicy>("jitter = \"some\"").is_err());
        assert!(toml::from_str::<RetryPolicy>("attempts = 5").is_err());
    }
}
