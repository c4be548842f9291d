//! What to place: the request the filters and scores read.

use super::*;

/// What to place.
#[derive(Debug, Clone)]
pub struct PlacementRequest {
    /// The stage.
    pub stage: StageKind,
    /// Model name (matched against devices' resident models).
    pub model: String,
    /// Memory the model needs when loaded, bytes (registry `memory_bytes`).
    pub memory_bytes: u64,
    /// Inputs in the request (classify/embed; 1 for generation): sizes its timeout.
    pub inputs: usize,
    /// Backend ids the model can run on; `None`: any.
    pub backends_supported_by_model: Option<Vec<String>>,
    /// The precision the model computes at: only backends that compute at it (or at one
    /// of `also_at`) on a device are usable there.
    pub precision: Precision,
    /// Other precisions the model may compute at (an NPU's f16).
    pub also_at: Vec<Precision>,
    /// The request uses what only engines act on (function calling, structured output):
    /// only attached or supervised engines are candidates, never the native decoder.
    pub engine_only: bool,
    /// An engine model that may run partly on a GPU (llama.cpp's `-ngl`, the rest on the
    /// host's CPU) when it fits no GPU whole: at least this many bytes must fit there (the
    /// compute buffer, the output layer and one layer). `None`: whole or not at all.
    pub partial_min_bytes: Option<u64>,
    /// (node, device) pairs to skip: where this request already failed.
    pub exclude: Vec<(String, String)>,
    /// How many candidates [`place`] returns (at least 1).
    pub top_k: usize,
    /// The current time (circuit breakers' cooldowns).
    pub now: Instant,
}

impl PlacementRequest {
    /// A request of one input at f32 for the best 3 candidates, any backend, nothing
    /// excluded.
    pub fn new(
        stage: StageKind,
        model: impl Into<String>,
        memory_bytes: u64,
        now: Instant,
    ) -> Self {
        PlacementRequest {
            stage,
            model: model.into(),
            memory_bytes,
            inputs: 1,
            backends_supported_by_model: None,
            precision: Precision::F32,
            also_at: Vec::new(),
            engine_only: false,
            partial_min_bytes: None,
            exclude: Vec::new(),
            top_k: 3,
            now,
        }
    }

    /// Restricts the backends the model may use.
    pub fn with_backends<S: Into<String>>(mut self, backends: impl IntoIterator<Item = S>) -> Self {
        self.backends_supported_by_model = Some(backends.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the precision the model must compute at.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// Sets the precisions the model may compute at, the first preferred.
    pub fn with_precisions(mut self, precisions: &[Precision]) -> Self {
        if let Some((first, rest)) = precisions.split_first() {
            self.precision = *first;
            self.also_at = rest.to_vec();
        }
        self
    }

    /// Lets the model run partly on a GPU (see [`PlacementRequest::partial_min_bytes`]).
    pub fn with_partial_offload(mut self, min_bytes: Option<u64>) -> Self {
        self.partial_min_bytes = min_bytes;
        self
    }

    /// Places only on engines (see [`PlacementRequest::engine_only`]) when `needed`.
    pub fn needing_engine(mut self, needed: bool) -> Self {
        self.engine_only = needed;
        self
    }

    /// Skips a device (it failed for this request).
    pub fn excluding(mut self, node: impl Into<String>, device: impl Into<String>) -> Self {
        self.exclude.push((node.into(), device.into()));
        self
    }

    /// Sets the number of inputs (at least 1).
    pub fn with_inputs(mut self, inputs: usize) -> Self {
        self.inputs = inputs.max(1);
        self
    }

    /// Sets how many candidates [`place`] returns.
    pub fn with_top_k(mut self, k: usize) -> Self {
        self.top_k = k;
        self
    }
}
