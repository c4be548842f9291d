//! ONNX Runtime backend.
//!
//! The shared library comes from the PyPI `onnxruntime` (CPU) or `onnxruntime-gpu` (CUDA,
//! TensorRT) wheel and is loaded at run time with `ort::init_from` — never `ort::init()`,
//! which panics when no library is found. Backend ids: `ort-cpu`, `ort-cuda`,
//! `ort-tensorrt`. A GPU execution provider that cannot register is an error, never a silent
//! fall-back to the CPU: the device a stage reports is the device it ran on.
//!
//! Precision: ONNX Runtime computes a graph at the types it is written in; our graphs are
//! float32, so every provider here runs them at `f32` and refuses any other precision.
//!
//! No `ort-openvino` here: the PyPI `onnxruntime-openvino` build (1.24, OpenVINO 2025.4)
//! needs `ort`'s `api-24`, while the workspace uses one API level (`api-31` for
//! onnxruntime 1.31/1.32). OpenVINO is served by the native `openvino` backend instead.

mod session;

use std::path::{Path, PathBuf};

use std::sync::OnceLock;

use switchyard_backend_core::{
    Backend, BackendError, DeviceRef, DeviceType, LoadedModel, ModelSpec, Precision, paths,
};

use switchyard_backend_core::probe;
use switchyard_backend_core::session::Session;

pub use session::OrtSession;

/// Which execution provider a backend instance uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// The default CPU execution provider (`ort-cpu`).
    Cpu,
    /// The CUDA execution provider, NVIDIA GPUs (`ort-cuda`).
    Cuda,
    /// The TensorRT execution provider, NVIDIA GPUs (`ort-tensorrt`).
    TensorRt,
}

impl Provider {
    /// Backend id.
    pub fn id(self) -> &'static str {
        match self {
            Provider::Cpu => "ort-cpu",
            Provider::Cuda => "ort-cuda",
            Provider::TensorRt => "ort-tensorrt",
        }
    }
}

/// The loaded library and its environment.
pub struct Runtime {
    /// Path of the shared library.
    pub library: PathBuf,
    /// The process-wide ORT environment.
    pub environment: ort::environment::Environment,
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// Loads the ONNX Runtime library once per process (found by [`paths::ONNX_RUNTIME`]).
pub fn runtime() -> Result<&'static Runtime, BackendError> {
    RUNTIME
        .get_or_init(|| {
            let library = paths::ONNX_RUNTIME.find()?;
            let environment = ort::init_from(&library)
                .map_err(|e| format!("cannot load {}: {e}", library.display()))?
                .with_name("switchyard")
                .build()
                .map_err(|e| format!("cannot create the ONNX Runtime environment: {e}"))?;
            tracing::debug!(library = %library.display(), "ONNX Runtime loaded");
            Ok(Runtime {
                library,
                environment,
            })
        })
        .as_ref()
        .map_err(|e| BackendError::RuntimeUnavailable(e.clone()))
}

/// Checks that the loaded library has `provider`'s execution provider.
fn provider_available(provider: Provider) -> Result<(), String> {
    #[allow(unused_imports)]
    use ort::ep::ExecutionProvider;
    #[allow(unused)]
    let check = |available: ort::Result<bool>, name: &str| match available {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("no {name} execution provider")),
        Err(e) => Err(format!("cannot list execution providers: {e}")),
    };
    match provider {
        Provider::Cpu => Ok(()),
        #[cfg(feature = "cuda")]
        Provider::Cuda => check(ort::ep::CUDA::is_available(), "CUDA"),
        #[cfg(feature = "tensorrt")]
        Provider::TensorRt => check(ort::ep::TensorRT::is_available(), "TensorRT"),
        #[allow(unreachable_patterns)]
        other => Err(format!("{} support not compiled in", other.id())),
    }
}

/// ONNX Runtime with one execution provider.
#[derive(Debug, Clone)]
pub struct OrtBackend {
    provider: Provider,
    threads: usize,
}

impl OrtBackend {
    /// A backend for `provider`; fails when the runtime library cannot be loaded.
    /// A GPU provider whose execution provider is not in the loaded library (the CPU
    /// `onnxruntime` wheel has none) is [`BackendError::RuntimeUnavailable`].
    pub fn new(provider: Provider) -> Result<Self, BackendError> {
        let rt = runtime()?;
        provider_available(provider).map_err(|why| {
            BackendError::RuntimeUnavailable(format!(
                "{why} in {} (install the onnxruntime-gpu wheel into the venv in place of onnxruntime, or set SWITCHYARD_ORT_LIB to its libonnxruntime.so.1.*)",
                rt.library.display()
            ))
        })?;
        Ok(OrtBackend {
            provider,
            threads: paths::inference_threads(),
        })
    }

    /// Sets intra-op threads (CPU provider).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    fn check_device(&self, device: &DeviceRef) -> Result<(), BackendError> {
        let ok = match self.provider {
            Provider::Cpu => device.device_type == DeviceType::Cpu,
            Provider::Cuda | Provider::TensorRt => device.device_type == DeviceType::NvidiaGpu,
        };
        if ok {
            Ok(())
        } else {
            Err(BackendError::DeviceUnsupported {
                backend: self.provider.id().into(),
                device: device.id.clone(),
                reason: format!(
                    "{} runs only on {}",
                    self.provider.id(),
                    match self.provider {
                        Provider::Cpu => "the CPU",
                        _ => "NVIDIA GPUs",
                    }
                ),
            })
        }
    }

    /// The precisions this backend computes at: the graph's own float32.
    pub const PRECISIONS: [Precision; 1] = [Precision::F32];

    /// Opens an ONNX file on `device` as a [`OrtSession`] computing at `precision`, which
    /// must be one of [`OrtBackend::PRECISIONS`].
    pub fn open(
        &self,
        model: &str,
        file: &Path,
        device: &DeviceRef,
        precision: Precision,
    ) -> Result<OrtSession, BackendError> {
        self.check_device(device)?;
        if !Self::PRECISIONS.contains(&precision) {
            return Err(BackendError::DeviceUnsupported {
                backend: self.provider.id().into(),
                device: device.id.clone(),
                reason: format!(
                    "{} computes float32 graphs at f32 only; {model} asks for {precision}",
                    self.provider.id()
                ),
            });
        }
        OrtSession::open(model, file, self.provider, device.ordinal, self.threads)
    }
}

impl Backend for OrtBackend {
    fn id(&self) -> &'static str {
        self.provider.id()
    }

    fn probe(&self, device: &DeviceRef) -> Result<Vec<Precision>, BackendError> {
        probe::probe_precisions(&Self::PRECISIONS, |p| {
            let mut s = self.open("probe", &probe::probe_model(), device, p)?;
            probe::run_probe(&mut s)
        })
    }

    fn session(
        &self,
        model: &str,
        file: &Path,
        device: &DeviceRef,
        precision: Precision,
    ) -> Result<Box<dyn Session>, BackendError> {
        Ok(Box::new(self.open(model, file, device, precision)?))
    }

    fn load(
        &self,
        spec: &ModelSpec,
        device: &DeviceRef,
    ) -> Result<Box<dyn LoadedModel>, BackendError> {
        let session = self.open(&spec.name, &spec.onnx, device, spec.precision)?;
        switchyard_backend_core::decoder::model_for(spec, Box::new(session))
    }
}
