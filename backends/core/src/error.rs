//! Errors every backend reports, in terms a caller can map to gRPC / HTTP status codes.

use crate::stage::StageKind;

/// What went wrong while loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The runtime library (ORT / OpenVINO shared object) could not be found or loaded.
    #[error("runtime library unavailable: {0}")]
    RuntimeUnavailable(String),
    /// The backend cannot run on this device (missing EP, plugin, driver...).
    #[error("backend {backend} cannot run on device {device}: {reason}")]
    DeviceUnsupported {
        /// Id of the backend that refused (`ort-cuda`, `openvino`, ...).
        backend: String,
        /// The device it was asked to use (usually its inventory id).
        device: String,
        /// Why it cannot run there.
        reason: String,
    },
    /// A model file is missing.
    #[error("model file not found: {0}")]
    ModelFileMissing(String),
    /// A model file exists but cannot be parsed/compiled, or its inputs/outputs are not the
    /// ones the registry promises.
    #[error("invalid model {model}: {reason}")]
    InvalidModel {
        /// Name of the model in the registry.
        model: String,
        /// What is wrong with its files.
        reason: String,
    },
    /// The request is malformed (empty input, over-long input with `refuse` policy, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The model was asked for a stage it does not serve.
    #[error("model {model} serves {stage:?}, not {requested:?}")]
    WrongStage {
        /// Name of the model in the registry.
        model: String,
        /// The stage the model serves.
        stage: StageKind,
        /// The stage that was asked of it.
        requested: StageKind,
    },
    /// The model's worker queue is full.
    #[error("queue full for model {0}")]
    QueueFull(String),
    /// Loading would overcommit the device's memory.
    #[error("out of device memory: {0}")]
    OutOfMemory(String),
    /// The worker thread is gone (model unloaded or crashed).
    #[error("model {0} is not loaded")]
    NotLoaded(String),
    /// The runtime failed while executing.
    #[error("inference failed: {0}")]
    Inference(String),
}
