//! Switchyard's backend contract.
//!
//! * [`Backend`]: a runtime (ONNX Runtime with one execution provider, OpenVINO, ...) that can
//!   load a model onto a device. Implementations live in their own feature-gated crates.
//! * [`LoadedModel`]: one model instance on one device; it runs classify/embed batches or
//!   streams generated tokens. It is driven by exactly one thread ([`worker::ModelWorker`]).
//! * [`registry`]: the model registry file (names, stages, files, memory estimates, limits).
//!
//! Nothing here links a vendor SDK, so the controller builds without one.

pub mod decoder;
pub mod encoder;
pub mod error;
pub mod gguf;
pub mod paths;
pub mod precision;
pub mod probe;
pub mod registry;
pub mod sampling;
pub mod session;
pub mod stage;
pub mod text;
pub mod worker;

pub use error::BackendError;
pub use precision::{PRECISIONS, Precision};
pub use registry::{EngineKind, EngineSpec, ModelRegistry, ModelSpec, OverflowPolicy};
pub use stage::{
    ClassScores, DeviceRef, DeviceType, EmbedOutput, FinishReason, GenerateParams, GenerateSummary,
    StageKind, TokenEvent,
};

/// An int8 throughput figure a runtime reports for a device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceTops {
    /// Dense int8 tera-operations per second.
    pub int8_tops: f64,
    /// Where it came from (runtime, property, precision).
    pub detail: String,
}

/// A runtime that can load models onto devices (e.g. `ort-cpu`, `ort-cuda`, `openvino`).
pub trait Backend: Send + Sync {
    /// Stable id used in inventories, placement and traces: `ort-cpu`, `ort-cuda`,
    /// `ort-tensorrt`, `openvino`.
    fn id(&self) -> &'static str;

    /// Checks that this backend really runs on `device` (loads a tiny model and runs it at
    /// every precision it knows) and returns the precisions it computes at there, best first
    /// (never empty). The error says why it does not run at all.
    fn probe(&self, device: &DeviceRef) -> Result<Vec<Precision>, BackendError>;

    /// Loads `spec` onto `device` at `spec.precision`. Missing/corrupt files, wrong input
    /// names, unsupported devices and a precision the device cannot compute at are errors; a
    /// backend never silently runs somewhere other than `device`, nor at another precision.
    fn load(
        &self,
        spec: &ModelSpec,
        device: &DeviceRef,
    ) -> Result<Box<dyn LoadedModel>, BackendError>;

    /// The most instances [`Backend::load_streams`] loads of `spec` on `device` (one unless
    /// the backend runs streams there), so that the caller can reserve memory before it loads.
    fn max_streams(&self, spec: &ModelSpec, device: &DeviceRef) -> usize {
        let _ = (spec, device);
        1
    }

    /// Loads `spec` as up to `streams` instances that run side by side on `device`, each
    /// driven by a thread of its own and sharing what the runtime lets them share (OpenVINO
    /// on a CPU: one compiled model with `NUM_STREAMS` = `streams`, an infer request per
    /// instance, the inference threads split between them). Never empty. By default a
    /// backend runs one instance whatever `streams` asks: the caller sizes its queue by what
    /// comes back.
    fn load_streams(
        &self,
        spec: &ModelSpec,
        device: &DeviceRef,
        streams: usize,
    ) -> Result<Vec<Box<dyn LoadedModel>>, BackendError> {
        let _ = streams;
        Ok(vec![self.load(spec, device)?])
    }

    /// Checks that `spec` itself runs on `device` — compiled with its own shapes at its own
    /// precision, then one input run — for devices where the tiny probe proves little
    /// (static-shape NPUs compile the `[1, 4]` probe graph and nothing dynamic).
    fn probe_model(&self, spec: &ModelSpec, device: &DeviceRef) -> Result<(), BackendError> {
        let mut m = self.load(spec, device)?;
        let input = ["probe".to_string()];
        match spec.stage {
            StageKind::Embed => m.embed(&input).map(drop),
            StageKind::Classify => m.classify(&input).map(drop),
            StageKind::Generate => Ok(()),
        }
    }

    /// The device's own int8 throughput figure as this runtime reports it (OpenVINO's
    /// `DEVICE_GOPS`), when it reports one. `Ok(None)`: the runtime has no such figure for
    /// this device.
    fn device_tops(&self, device: &DeviceRef) -> Result<Option<DeviceTops>, BackendError> {
        let _ = device;
        Ok(None)
    }

    /// Opens a bare ONNX graph on `device` at `precision` as a [`session::Session`] (probe,
    /// calibration, benchmarks). Backends that cannot do this say so.
    fn session(
        &self,
        model: &str,
        file: &std::path::Path,
        device: &DeviceRef,
        precision: Precision,
    ) -> Result<Box<dyn session::Session>, BackendError> {
        let _ = (model, file, precision);
        Err(BackendError::DeviceUnsupported {
            backend: self.id().into(),
            device: device.id.clone(),
            reason: "this backend cannot open bare sessions".into(),
        })
    }
}

/// One model loaded on one device. Not `Sync`: exactly one thread drives it.
pub trait LoadedModel: Send {
    /// The registry entry this instance was loaded from.
    fn spec(&self) -> &ModelSpec;

    /// The precision the runtime computes this instance at (read back from the runtime).
    fn precision(&self) -> Precision;

    /// Embeds a batch of texts (mean-pooled, L2-normalised).
    fn embed(&mut self, inputs: &[String]) -> Result<EmbedOutput, BackendError> {
        let _ = inputs;
        Err(BackendError::WrongStage {
            model: self.spec().name.clone(),
            stage: self.spec().stage,
            requested: StageKind::Embed,
        })
    }

    /// Classifies a batch of texts.
    fn classify(&mut self, inputs: &[String]) -> Result<Vec<ClassScores>, BackendError> {
        let _ = inputs;
        Err(BackendError::WrongStage {
            model: self.spec().name.clone(),
            stage: self.spec().stage,
            requested: StageKind::Classify,
        })
    }

    /// Generates text, calling `on_token` for every decoded piece; generation stops early
    /// when `on_token` returns `false` (client went away).
    fn generate(
        &mut self,
        params: &GenerateParams,
        on_token: &mut dyn FnMut(TokenEvent) -> bool,
    ) -> Result<GenerateSummary, BackendError> {
        let _ = (params, on_token);
        Err(BackendError::WrongStage {
            model: self.spec().name.clone(),
            stage: self.spec().stage,
            requested: StageKind::Generate,
        })
    }
}
