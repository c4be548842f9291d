//! Latency tracking settings (`[scheduler.latency]`): smoothing, window, and one timeout
//! rule per measured figure.

use std::time::Duration;

use serde::Deserialize;
use switchyard_backend_core::StageKind;

/// Timeout rule of one stage.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutRule {
    /// Multiplier applied to the p95.
    pub k: f64,
    /// Lower bound, milliseconds.
    pub floor_ms: u64,
    /// Upper bound, milliseconds.
    pub ceiling_ms: u64,
    /// Timeout used until `min_samples` samples exist, milliseconds.
    pub initial_ms: u64,
    /// Samples needed before the p95 is trusted.
    pub min_samples: usize,
}

impl TimeoutRule {
    /// The timeout before `min_samples` samples exist (within floor and ceiling).
    pub(crate) fn initial(&self) -> Duration {
        Duration::from_millis(self.initial_ms.clamp(self.floor_ms, self.ceiling_ms))
    }

    /// `clamp(p95 × k, floor, ceiling)`.
    pub(crate) fn clamp(&self, p95_ms: f64) -> Duration {
        let ms = (p95_ms * self.k).clamp(self.floor_ms as f64, self.ceiling_ms as f64);
        Duration::from_secs_f64(ms / 1000.0)
    }
}

/// Latency tracking settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatencyConfig {
    /// EWMA smoothing factor in (0, 1]: weight of the newest sample.
    pub alpha: f64,
    /// Samples kept per series for the p95 (ring buffer).
    pub window: usize,
    /// Classify stage rule.
    pub classify: TimeoutRule,
    /// Embed stage rule.
    pub embed: TimeoutRule,
    /// Generate stage rule (time to first token).
    pub generate: TimeoutRule,
    /// Generate: the longest gap between two tokens of a stream (after the first).
    pub generate_gap: TimeoutRule,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        LatencyConfig {
            alpha: 0.2,
            window: 128,
            classify: TimeoutRule {
                k: 3.0,
                floor_ms: 250,
                ceiling_ms: 5_000,
                initial_ms: 2_000,
                min_samples: 10,
            },
            embed: TimeoutRule {
                k: 3.0,
                floor_ms: 250,
                ceiling_ms: 10_000,
                initial_ms: 5_000,
                min_samples: 10,
            },
            generate: TimeoutRule {
                k: 3.0,
                floor_ms: 2_000,
                ceiling_ms: 60_000,
                initial_ms: 30_000,
                min_samples: 10,
            },
            generate_gap: TimeoutRule {
                k: 3.0,
                floor_ms: 1_000,
                ceiling_ms: 30_000,
                initial_ms: 10_000,
                min_samples: 10,
            },
        }
    }
}

/// A latency config value out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LatencyConfigError {
    /// `alpha` outside (0, 1].
    #[error("latency alpha must be in (0, 1], got {0}")]
    Alpha(f64),
    /// `window` is 0.
    #[error("latency window must be at least 1")]
    Window,
    /// A timeout rule is inconsistent.
    #[error("timeout rule for {stage}: {problem}")]
    Rule {
        /// Stage name.
        stage: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
}

impl LatencyConfig {
    /// The rule of one stage (for generation: the first token).
    pub fn rule(&self, stage: StageKind) -> &TimeoutRule {
        match stage {
            StageKind::Classify => &self.classify,
            StageKind::Embed => &self.embed,
            StageKind::Generate => &self.generate,
        }
    }

    /// Checks ranges; call after deserialising.
    pub fn validate(&self) -> Result<(), LatencyConfigError> {
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return Err(LatencyConfigError::Alpha(self.alpha));
        }
        if self.window == 0 {
            return Err(LatencyConfigError::Window);
        }
        let rules = [
            ("classify", &self.classify),
            ("embed", &self.embed),
            ("generate", &self.generate),
            ("generate_gap", &self.generate_gap),
        ];
        for (stage, r) in rules {
            let problem = if !(r.k.is_finite() && r.k > 0.0) {
                Some("k must be a finite number > 0")
            } else if r.floor_ms > r.ceiling_ms {
                Some("floor_ms is above ceiling_ms")
            } else if r.floor_ms == 0 {
                Some("floor_ms must be > 0")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(LatencyConfigError::Rule { stage, problem });
            }
        }
        Ok(())
    }
}
