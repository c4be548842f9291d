//! What a stage run on this node reports back: outputs, where and how it ran, timings.

use switchyard_backend_core::{GenerateSummary, Precision};

use crate::batcher::BatchReply;

/// Result of a classify/embed stage.
#[derive(Debug, Clone)]
pub struct StageResult {
    /// The batcher's reply: outputs, timings and batch size.
    pub reply: BatchReply,
    /// Id of the backend that ran it (`ort-cpu`, `openvino`, ...).
    pub backend: String,
    /// The precision the runtime computed at.
    pub precision: Precision,
    /// True when the device exists only in a fixture inventory and the CPU ran the stage.
    pub simulated: bool,
    /// Time spent loading the model for this call, ms (0 when it was resident).
    pub load_ms: f64,
}

/// Where a generation ran.
#[derive(Debug, Clone)]
pub struct GenerateOutcome {
    /// Token counts and finish reason.
    pub summary: GenerateSummary,
    /// Id of the backend that ran it (`ort-cpu`, `openvino`, ...).
    pub backend: String,
    /// The precision the runtime computed at.
    pub precision: Precision,
    /// True when the device exists only in a fixture inventory and the CPU ran the stage.
    pub simulated: bool,
    /// Time the request waited in the model worker's queue, ms.
    pub queue_ms: f64,
    /// Time the model thread spent generating, ms.
    pub compute_ms: f64,
    /// Time spent loading the model for this call, ms (0 when it was resident).
    pub load_ms: f64,
}
