//! Observed latency per (stage, model, node, device) and adaptive timeouts.
//!
//! Each series keeps an EWMA (for scoring) and a ring of the last `window` samples (for the
//! p95). [`LatencyStats::adaptive_timeout`] is `clamp(p95 × k, floor, ceiling)` over all devices
//! of a model, or the stage's `initial_ms` until `min_samples` samples exist.
//!
//! **Generation**: the samples and the timeout are the *time to first token* (queueing, prompt
//! processing and the first decode step), which is what differs between devices. The total
//! length of an answer depends on `max_tokens`, not on the device, so the pipeline bounds the
//! rest of a stream with a per-token idle timeout of its own instead of a total deadline.

use std::time::Duration;

use serde::Deserialize;
use switchyard_backend_core::StageKind;

use crate::fxhash::{FxHashMap, device_key};

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
    fn clamp(&self, p95_ms: f64) -> Duration {
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
    /// The rule of one stage.
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
        for stage in [StageKind::Classify, StageKind::Embed, StageKind::Generate] {
            let r = self.rule(stage);
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
                return Err(LatencyConfigError::Rule {
                    stage: stage.as_str(),
                    problem,
                });
            }
        }
        Ok(())
    }
}

/// One latency series: EWMA + ring of recent samples (milliseconds).
#[derive(Debug, Clone)]
struct Series {
    ewma_ms: f64,
    count: u64,
    ring: Vec<f64>,
    next: usize,
}

impl Series {
    fn new() -> Self {
        Series {
            ewma_ms: 0.0,
            count: 0,
            ring: Vec::new(),
            next: 0,
        }
    }

    fn push(&mut self, ms: f64, alpha: f64, window: usize) {
        self.ewma_ms = if self.count == 0 {
            ms
        } else {
            alpha * ms + (1.0 - alpha) * self.ewma_ms
        };
        self.count += 1;
        if self.ring.len() < window {
            self.ring.push(ms);
        } else {
            self.ring[self.next] = ms;
        }
        self.next = (self.next + 1) % window;
    }

    /// Nearest-rank p95 of the ring.
    fn p95(&self) -> Option<f64> {
        if self.ring.is_empty() {
            return None;
        }
        let mut v = self.ring.clone();
        let rank = ((v.len() as f64) * 0.95).ceil() as usize;
        let idx = rank.clamp(1, v.len()) - 1;
        let (_, x, _) = v.select_nth_unstable_by(idx, f64::total_cmp);
        Some(*x)
    }
}

/// Latency of one (stage, model): over all devices and per device.
#[derive(Debug, Clone)]
pub struct ModelLatency {
    all: Series,
    devices: FxHashMap<String, FxHashMap<String, Series>>,
    /// Per-device EWMA keyed by `device_key(node, device)`: a compact table for placement.
    ewma_by_key: FxHashMap<u64, f64>,
}

impl ModelLatency {
    /// EWMA over all devices, milliseconds.
    pub fn average_ms(&self) -> Option<f64> {
        (self.all.count > 0).then_some(self.all.ewma_ms)
    }

    /// EWMA by precomputed device key (the view's `HotDevice::key`), milliseconds.
    #[inline]
    pub(crate) fn device_ms_by_key(&self, key: u64) -> Option<f64> {
        self.ewma_by_key.get(&key).copied()
    }

    /// EWMA on one device, milliseconds.
    pub fn device_ms(&self, node: &str, device: &str) -> Option<f64> {
        self.devices
            .get(node)
            .and_then(|m| m.get(device))
            .map(|s| s.ewma_ms)
    }
}

/// Latency statistics for every (stage, model, node, device) seen.
#[derive(Debug, Clone, Default)]
pub struct LatencyStats {
    config: LatencyConfig,
    stages: [FxHashMap<String, ModelLatency>; 3],
}

fn stage_index(stage: StageKind) -> usize {
    match stage {
        StageKind::Classify => 0,
        StageKind::Embed => 1,
        StageKind::Generate => 2,
    }
}

impl LatencyStats {
    /// Empty statistics (window and alpha sanitised: window ≥ 1, alpha in (0, 1]).
    pub fn new(mut config: LatencyConfig) -> Self {
        config.window = config.window.max(1);
        if !(config.alpha > 0.0 && config.alpha <= 1.0) {
            config.alpha = LatencyConfig::default().alpha;
        }
        LatencyStats {
            config,
            stages: Default::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &LatencyConfig {
        &self.config
    }

    /// Records one successful stage run (for generation: time to first token).
    pub fn record(
        &mut self,
        stage: StageKind,
        model: &str,
        node: &str,
        device: &str,
        latency: Duration,
    ) {
        let (alpha, window) = (self.config.alpha, self.config.window);
        let ms = latency.as_secs_f64() * 1000.0;
        let map = &mut self.stages[stage_index(stage)];
        if !map.contains_key(model) {
            map.insert(
                model.to_owned(),
                ModelLatency {
                    all: Series::new(),
                    devices: FxHashMap::default(),
                    ewma_by_key: FxHashMap::default(),
                },
            );
        }
        let m = map.get_mut(model).expect("inserted above");
        m.all.push(ms, alpha, window);
        let per_node = match m.devices.get_mut(node) {
            Some(x) => x,
            None => m.devices.entry(node.to_owned()).or_default(),
        };
        let ewma = match per_node.get_mut(device) {
            Some(s) => {
                s.push(ms, alpha, window);
                s.ewma_ms
            }
            None => {
                let mut s = Series::new();
                s.push(ms, alpha, window);
                let e = s.ewma_ms;
                per_node.insert(device.to_owned(), s);
                e
            }
        };
        m.ewma_by_key.insert(device_key(node, device), ewma);
    }

    /// Statistics of one (stage, model), if any sample was recorded.
    pub fn model(&self, stage: StageKind, model: &str) -> Option<&ModelLatency> {
        self.stages[stage_index(stage)].get(model)
    }

    /// EWMA on one device.
    pub fn ewma(
        &self,
        stage: StageKind,
        model: &str,
        node: &str,
        device: &str,
    ) -> Option<Duration> {
        self.model(stage, model)?
            .device_ms(node, device)
            .map(|ms| Duration::from_secs_f64(ms / 1000.0))
    }

    /// p95 over all devices of a model, with its sample count.
    pub fn p95(&self, stage: StageKind, model: &str) -> Option<(Duration, usize)> {
        let s = &self.model(stage, model)?.all;
        s.p95()
            .map(|ms| (Duration::from_secs_f64(ms / 1000.0), s.ring.len()))
    }

    /// `clamp(p95 × k, floor, ceiling)` over all devices of the model; the stage's initial
    /// timeout until `min_samples` samples exist.
    pub fn adaptive_timeout(&self, stage: StageKind, model: &str) -> Duration {
        let rule = self.config.rule(stage);
        match self.model(stage, model).map(|m| &m.all) {
            Some(s) if s.ring.len() >= rule.min_samples.max(1) => {
                rule.clamp(s.p95().unwrap_or_default())
            }
            _ => Duration::from_millis(rule.initial_ms.clamp(rule.floor_ms, rule.ceiling_ms)),
        }
    }

    /// Like [`LatencyStats::adaptive_timeout`] but from one device's samples when it has
    /// enough (a slow device gets a longer timeout than the fleet's), else the model's.
    pub fn adaptive_timeout_on(
        &self,
        stage: StageKind,
        model: &str,
        node: &str,
        device: &str,
    ) -> Duration {
        let rule = self.config.rule(stage);
        let series = self
            .model(stage, model)
            .and_then(|m| m.devices.get(node))
            .and_then(|n| n.get(device));
        match series {
            Some(s) if s.ring.len() >= rule.min_samples.max(1) => {
                rule.clamp(s.p95().unwrap_or_default())
            }
            _ => self.adaptive_timeout(stage, model),
        }
    }

    /// Forgets a node's per-device series (it left the cluster); model-wide series stay.
    pub fn forget_node(&mut self, node: &str) {
        for map in &mut self.stages {
            for m in map.values_mut() {
                if let Some(devices) = m.devices.remove(node) {
                    for device in devices.keys() {
                        m.ewma_by_key.remove(&device_key(node, device));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
