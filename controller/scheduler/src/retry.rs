//! Retry settings: how many attempts, and the backoff between them (the shared rule of
//! `switchyard-backoff`). Retries go to another device: the caller adds the failed (node,
//! device) to [`crate::PlacementRequest::exclude`].

use std::time::Duration;

use serde::Deserialize;

use switchyard_backoff::Backoff;
pub use switchyard_backoff::Jitter;

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

    /// The backoff schedule of these settings.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            base: Duration::from_millis(self.base_delay_ms),
            max: Duration::from_millis(self.max_delay_ms),
            jitter: self.jitter,
        }
    }

    /// The exponential cap for retry `retry` (1-based); see [`Backoff::cap`].
    pub fn cap(&self, retry: u32) -> Duration {
        self.backoff().cap(retry)
    }

    /// Delay before retry `retry` (1-based) given a uniform random `rng_value` in `[0, 1)`;
    /// see [`Backoff::delay`].
    pub fn delay(&self, retry: u32, rng_value: f64) -> Duration {
        self.backoff().delay(retry, rng_value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_follow_the_shared_backoff_rule() {
        let p = RetryPolicy::default();
        assert_eq!(p.cap(1), Duration::from_millis(50));
        assert_eq!(p.cap(200), Duration::from_millis(2_000));
        assert_eq!(p.delay(3, 0.5), p.backoff().delay(3, 0.5));
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
