//! One latency series (EWMA + ring of recent samples, milliseconds), and a figure tracked
//! over all devices of a model and per device.

use crate::fxhash::FxHashMap;

/// EWMA + ring of the last `window` samples (milliseconds).
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub(crate) ewma_ms: f64,
    pub(crate) count: u64,
    pub(crate) ring: Vec<f64>,
    next: usize,
}

impl Series {
    pub(crate) fn new() -> Self {
        Series {
            ewma_ms: 0.0,
            count: 0,
            ring: Vec::new(),
            next: 0,
        }
    }

    pub(crate) fn push(&mut self, ms: f64, alpha: f64, window: usize) {
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
    pub(crate) fn p95(&self) -> Option<f64> {
        if self.ring.is_empty() {
            return None;
        }
        let mut v = self.ring.clone();
        let rank = ((v.len() as f64) * 0.95).ceil() as usize;
        let idx = rank.clamp(1, v.len()) - 1;
        let (_, x, _) = v.select_nth_unstable_by(idx, f64::total_cmp);
        Some(*x)
    }

    /// Samples in the ring.
    pub(crate) fn len(&self) -> usize {
        self.ring.len()
    }
}

/// One figure of a model: over all its devices, and per (node, device).
#[derive(Debug, Clone)]
pub(crate) struct Tracked {
    pub(crate) all: Series,
    pub(crate) devices: FxHashMap<String, FxHashMap<String, Series>>,
}

impl Tracked {
    pub(crate) fn new() -> Self {
        Tracked {
            all: Series::new(),
            devices: FxHashMap::default(),
        }
    }

    /// Adds a sample; returns the device's EWMA after it.
    pub(crate) fn push(
        &mut self,
        node: &str,
        device: &str,
        ms: f64,
        alpha: f64,
        window: usize,
    ) -> f64 {
        self.all.push(ms, alpha, window);
        let per_node = match self.devices.get_mut(node) {
            Some(x) => x,
            None => self.devices.entry(node.to_owned()).or_default(),
        };
        match per_node.get_mut(device) {
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
        }
    }

    pub(crate) fn device(&self, node: &str, device: &str) -> Option<&Series> {
        self.devices.get(node).and_then(|m| m.get(device))
    }

    /// The device's series when it has `min` samples, else the model-wide one when it has,
    /// else none.
    pub(crate) fn trusted(&self, node: &str, device: &str, min: usize) -> Option<&Series> {
        let min = min.max(1);
        match self.device(node, device) {
            Some(s) if s.len() >= min => Some(s),
            _ => (self.all.len() >= min).then_some(&self.all),
        }
    }
}
