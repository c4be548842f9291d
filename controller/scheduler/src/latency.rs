//! Observed latency per (stage, model, node, device) and adaptive timeouts.
//!
//! Each figure keeps an EWMA (for scoring) and a ring of the last `window` samples (for the
//! p95), over all devices of a model and per device. A timeout is `clamp(p95 × k, floor,
//! ceiling)` from the device's samples when it has `min_samples`, else the model's, else the
//! rule's `initial_ms`. What is measured is what a timeout bounds:
//!
//! * **classify / embed**: the whole call, and the time *per input*. The timeout of an
//!   `n`-input request is `clamp(k × max(p95 call, p95 per input × n))`: a 256-input request
//!   is not held to what single inputs take, and a single one still gets at least what one
//!   call takes.
//! * **generate**: the *time to first token* (queueing, prompt processing, first decode
//!   step — what differs between devices) and, separately, the *longest gap between two
//!   tokens* of each stream. The total length of an answer depends on `max_tokens`, not on
//!   the device, so it is never a sample: the pipeline waits at most the first-token timeout
//!   for the first chunk and the gap timeout for each next one.

mod config;
mod series;

use std::time::Duration;

use switchyard_backend_core::StageKind;

pub use config::{LatencyConfig, LatencyConfigError, TimeoutRule};
use series::Tracked;

use crate::fxhash::{FxHashMap, device_key};

/// One successful stage run, as measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample {
    /// A classify/embed call of `inputs` inputs that took `took`.
    Batch {
        /// The whole call.
        took: Duration,
        /// Inputs in the request (≥ 1).
        inputs: usize,
    },
    /// A generation stream.
    Stream {
        /// From dispatch to the first token.
        first_token: Duration,
        /// The longest wait between two chunks after the first (`None`: one chunk only).
        longest_gap: Option<Duration>,
    },
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Latency of one (stage, model): over all devices and per device.
#[derive(Debug, Clone)]
pub struct ModelLatency {
    /// Batch stages: the whole call; generation: time to first token. Scored by EWMA.
    primary: Tracked,
    /// Batch stages: time per input; generation: the longest gap between tokens.
    secondary: Tracked,
    /// Per-device EWMA of `primary` keyed by `device_key(node, device)`: a compact table for
    /// placement.
    ewma_by_key: FxHashMap<u64, f64>,
}

impl ModelLatency {
    fn new() -> Self {
        ModelLatency {
            primary: Tracked::new(),
            secondary: Tracked::new(),
            ewma_by_key: FxHashMap::default(),
        }
    }

    /// EWMA over all devices, milliseconds.
    pub fn average_ms(&self) -> Option<f64> {
        (self.primary.all.count > 0).then_some(self.primary.all.ewma_ms)
    }

    /// EWMA by precomputed device key (the view's `HotDevice::key`), milliseconds.
    #[inline]
    pub(crate) fn device_ms_by_key(&self, key: u64) -> Option<f64> {
        self.ewma_by_key.get(&key).copied()
    }

    /// EWMA on one device, milliseconds.
    pub fn device_ms(&self, node: &str, device: &str) -> Option<f64> {
        self.primary.device(node, device).map(|s| s.ewma_ms)
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

    /// Records one successful stage run of one input (for generation: its time to first
    /// token). Shorthand for [`LatencyStats::record_sample`].
    pub fn record(
        &mut self,
        stage: StageKind,
        model: &str,
        node: &str,
        device: &str,
        latency: Duration,
    ) {
        let sample = match stage {
            StageKind::Generate => Sample::Stream {
                first_token: latency,
                longest_gap: None,
            },
            _ => Sample::Batch {
                took: latency,
                inputs: 1,
            },
        };
        self.record_sample(stage, model, node, device, sample);
    }

    /// Records one successful stage run.
    pub fn record_sample(
        &mut self,
        stage: StageKind,
        model: &str,
        node: &str,
        device: &str,
        sample: Sample,
    ) {
        let (alpha, window) = (self.config.alpha, self.config.window);
        let map = &mut self.stages[stage_index(stage)];
        if !map.contains_key(model) {
            map.insert(model.to_owned(), ModelLatency::new());
        }
        let m = map.get_mut(model).expect("inserted above");
        let (primary, secondary) = match sample {
            Sample::Batch { took, inputs } => (ms(took), Some(ms(took) / inputs.max(1) as f64)),
            Sample::Stream {
                first_token,
                longest_gap,
            } => (ms(first_token), longest_gap.map(ms)),
        };
        let ewma = m.primary.push(node, device, primary, alpha, window);
        m.ewma_by_key.insert(device_key(node, device), ewma);
        if let Some(x) = secondary {
            m.secondary.push(node, device, x, alpha, window);
        }
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

    /// p95 over all devices of a model (the whole call; generation: first token), with its
    /// sample count.
    pub fn p95(&self, stage: StageKind, model: &str) -> Option<(Duration, usize)> {
        let s = &self.model(stage, model)?.primary.all;
        s.p95()
            .map(|ms| (Duration::from_secs_f64(ms / 1000.0), s.len()))
    }

    /// `clamp(p95 × k, floor, ceiling)` of the whole call (generation: the first token) over
    /// all devices of the model; the stage's initial timeout until `min_samples` exist.
    pub fn adaptive_timeout(&self, stage: StageKind, model: &str) -> Duration {
        let rule = self.config.rule(stage);
        match self.model(stage, model).map(|m| &m.primary.all) {
            Some(s) if s.len() >= rule.min_samples.max(1) => {
                rule.clamp(s.p95().unwrap_or_default())
            }
            _ => rule.initial(),
        }
    }

    /// Like [`LatencyStats::adaptive_timeout`] but from one device's samples when it has
    /// enough (a slow device gets a longer timeout than the fleet's), else the model's: the
    /// timeout of a one-input call, or of a stream's first token.
    pub fn adaptive_timeout_on(
        &self,
        stage: StageKind,
        model: &str,
        node: &str,
        device: &str,
    ) -> Duration {
        self.batch_timeout_on(stage, model, node, device, 1)
    }

    /// The timeout of an `inputs`-input call on a device (see the module docs); for
    /// generation, of the first token.
    pub fn batch_timeout_on(
        &self,
        stage: StageKind,
        model: &str,
        node: &str,
        device: &str,
        inputs: usize,
    ) -> Duration {
        let rule = self.config.rule(stage);
        let Some(m) = self.model(stage, model) else {
            return rule.initial();
        };
        let Some(call) = m.primary.trusted(node, device, rule.min_samples) else {
            return rule.initial();
        };
        let mut p = call.p95().unwrap_or_default();
        if stage != StageKind::Generate
            && let Some(per_input) = m.secondary.trusted(node, device, rule.min_samples)
        {
            p = p.max(per_input.p95().unwrap_or_default() * inputs.max(1) as f64);
        }
        rule.clamp(p)
    }

    /// How long a generation stream on a device may go without a chunk after its first.
    pub fn gap_timeout_on(&self, model: &str, node: &str, device: &str) -> Duration {
        let rule = &self.config.generate_gap;
        self.model(StageKind::Generate, model)
            .and_then(|m| m.secondary.trusted(node, device, rule.min_samples))
            .map_or_else(
                || rule.initial(),
                |s| rule.clamp(s.p95().unwrap_or_default()),
            )
    }

    /// Forgets a node's per-device series (it left the cluster); model-wide series stay.
    pub fn forget_node(&mut self, node: &str) {
        for map in &mut self.stages {
            for m in map.values_mut() {
                m.secondary.devices.remove(node);
                if let Some(devices) = m.primary.devices.remove(node) {
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
