//! Native OpenVINO backend (id `openvino`): CPU, Intel GPU (`GPU.N`) and Intel NPU.
//!
//! The OpenVINO C library (`libopenvino_c.so.NNNN` from the PyPI `openvino` wheel) is loaded
//! at run time, once per process ([`runtime::load_library`]). The model logic (tokenisation,
//! pooling, KV-cache decoding) lives in `switchyard-backend-core`; this crate only provides a
//! [`Session`](switchyard_backend_core::session::Session) over an OpenVINO compiled model.
//!
//! * A device OpenVINO does not list is an error, never a silent run on the CPU.
//! * NCS2 (MYRIAD) needs OpenVINO 2022.3 LTS, which this build does not link: always
//!   [`BackendError::DeviceUnsupported`].
//! * The models have dynamic batch/sequence dimensions; OpenVINO's CPU and GPU plugins
//!   compile them as dynamic, and a zero-length KV cache (`[1, 3, 0, 64]` at the first decode
//!   step) is accepted as is.
//! * NPU: its plugin compiles static shapes only. Encoders are compiled once per bucket of
//!   a static plan (batch × sequence, see [`static_shapes`]) and calls are padded to the
//!   smallest bucket that holds them; a generator (a growing KV cache) is refused with a
//!   `DeviceUnsupported` error that says so. NPUs serve one request at a time (the agent's
//!   batcher keeps one batch in flight; placement treats them as concurrency-1).
//! * Precision: every compile sets `INFERENCE_PRECISION_HINT` to the precision asked for
//!   and reads the compiled model's value back; a device that would compute at another
//!   precision (bf16 on a CPU without AVX-512: the plugin computes it natively with
//!   AVX512_BF16/AMX and emulates it on other AVX-512 CPUs; f32 on an NPU) is refused, never
//!   used at a precision nobody asked for.

mod calibrate;
mod compile;
mod device;
pub mod gops;
pub mod runtime;
mod session;
pub mod static_shapes;
pub mod traits;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use openvino::{Core, DeviceType as OvDevice};
use switchyard_backend_core::probe;
use switchyard_backend_core::session::Session;
use switchyard_backend_core::{
    Backend, BackendError, DeviceRef, DeviceTops, DeviceType, LoadedModel, ModelSpec, PRECISIONS,
    Precision, StageKind, paths,
};

pub use calibrate::calibrate;
pub use device::{BACKEND_ID, LEGACY_2022_DIR_ENV, ncs2_reason, openvino_name};
pub use session::OpenVinoSession;
pub use static_shapes::{Bucket, BucketedSession};
pub use traits::DeviceTraits;

/// Performance hint used for every compiled model: each loaded model is driven by one
/// thread with one synchronous infer request, so LATENCY (one stream using all the threads)
/// beats THROUGHPUT (several streams that a single request cannot fill).
pub const PERFORMANCE_HINT: &str = "LATENCY";

/// The native OpenVINO runtime.
pub struct OpenVinoBackend {
    core: Mutex<Core>,
    threads: usize,
    cache_dir: Option<PathBuf>,
}

impl std::fmt::Debug for OpenVinoBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenVinoBackend")
            .field("threads", &self.threads)
            .field("cache_dir", &self.cache_dir)
            .finish_non_exhaustive()
    }
}

pub(crate) fn invalid(model: &str, reason: String) -> BackendError {
    BackendError::InvalidModel {
        model: model.into(),
        reason,
    }
}

impl OpenVinoBackend {
    /// A backend on the process's OpenVINO library; fails with
    /// [`BackendError::RuntimeUnavailable`] when the library cannot be found or loaded.
    /// CPU inference uses [`paths::inference_threads`] threads; GPU/NPU compiled blobs are
    /// cached in `<cache>/openvino-cache`.
    pub fn new() -> Result<Self, BackendError> {
        Ok(OpenVinoBackend {
            core: Mutex::new(runtime::new_core()?),
            threads: paths::inference_threads(),
            cache_dir: Some(paths::cache_dir().join("openvino-cache")),
        })
    }

    /// Sets `INFERENCE_NUM_THREADS` for CPU models.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Sets (or, with `None`, disables) the compiled-model cache for GPU and NPU. It is not
    /// used on the CPU, where compiling is quick and a cached blob of a 538 MB decoder would
    /// only cost disk space.
    pub fn with_cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }

    /// The devices OpenVINO lists (`CPU`, `GPU`, `GPU.0`, `NPU`, ...).
    pub fn available_devices(&self) -> Result<Vec<String>, BackendError> {
        let core = self.lock_core()?;
        available(&core)
    }

    /// The device's `OPTIMIZATION_CAPABILITIES` (`FP32`, `BF16`, `FP16`, `INT8`, ...): what
    /// its plugin can compute at.
    pub fn capabilities(&self, device: &DeviceRef) -> Result<Vec<String>, BackendError> {
        let core = self.lock_core()?;
        let name = openvino_name(device, &available(&core)?)?;
        let raw = core
            .get_property(
                &OvDevice::from(name.as_str()),
                &openvino::PropertyKey::DeviceCapabilities,
            )
            .map_err(|e| BackendError::Inference(format!("{name} capabilities: {e}")))?;
        Ok(raw
            .split([' ', ','])
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect())
    }

    fn lock_core(&self) -> Result<std::sync::MutexGuard<'_, Core>, BackendError> {
        self.core
            .lock()
            .map_err(|_| BackendError::Inference("OpenVINO core lock poisoned".into()))
    }

    /// Reads `file` (ONNX or IR) and compiles it for `device` at `precision` (set as
    /// `INFERENCE_PRECISION_HINT`, then read back from the compiled model: a device that
    /// would compute at another precision is refused). `model` names the model in errors.
    pub fn open(
        &self,
        model: &str,
        file: &Path,
        device: &DeviceRef,
        precision: Precision,
    ) -> Result<OpenVinoSession, BackendError> {
        self.compile(model, file, device, precision, None)
    }

    /// Compiles `file` once per bucket with static `[batch, sequence]` inputs (what a
    /// static-shape device such as an Intel NPU needs; see [`static_shapes`]), as one session.
    pub fn open_static(
        &self,
        model: &str,
        file: &Path,
        device: &DeviceRef,
        precision: Precision,
        buckets: &[Bucket],
    ) -> Result<BucketedSession, BackendError> {
        let sessions = buckets
            .iter()
            .map(|b| Ok((*b, self.compile(model, file, device, precision, Some(*b))?)))
            .collect::<Result<Vec<_>, BackendError>>()?;
        BucketedSession::new(sessions)
    }

    /// What `device`'s plugin needs and offers (static shapes, precisions), from its kind and
    /// the properties OpenVINO reports for it.
    pub fn traits(&self, device: &DeviceRef) -> Result<DeviceTraits, BackendError> {
        let core = self.lock_core()?;
        let name = openvino_name(device, &available(&core)?)?;
        let props = traits::read_properties(&core, &name);
        Ok(DeviceTraits::from_properties(device.device_type, &props))
    }
}

pub(crate) fn available(core: &Core) -> Result<Vec<String>, BackendError> {
    core.available_devices()
        .map(|v| v.iter().map(|d| d.as_ref().to_string()).collect())
        .map_err(|e| BackendError::RuntimeUnavailable(format!("OpenVINO lists no devices: {e}")))
}

impl Backend for OpenVinoBackend {
    fn id(&self) -> &'static str {
        BACKEND_ID
    }

    fn probe(&self, device: &DeviceRef) -> Result<Vec<Precision>, BackendError> {
        probe::probe_precisions(&PRECISIONS, |p| {
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

    fn device_tops(&self, device: &DeviceRef) -> Result<Option<DeviceTops>, BackendError> {
        let core = self.lock_core()?;
        let name = openvino_name(device, &available(&core)?)?;
        gops::device_tops(&core, &name)
    }

    fn load(
        &self,
        spec: &ModelSpec,
        device: &DeviceRef,
    ) -> Result<Box<dyn LoadedModel>, BackendError> {
        if self.traits(device)?.static_shapes {
            let Some(buckets) = static_shapes::plan(spec) else {
                return Err(BackendError::DeviceUnsupported {
                    backend: BACKEND_ID.into(),
                    device: device.id.clone(),
                    reason: format!(
                        "{} compiles static shapes only; {} generates with a growing KV cache, \
                         which has no static plan here",
                        device.id, spec.name
                    ),
                });
            };
            let session =
                self.open_static(&spec.name, &spec.onnx, device, spec.precision, &buckets)?;
            return switchyard_backend_core::decoder::model_for(spec, Box::new(session));
        }
        let session = self.open(&spec.name, &spec.onnx, device, spec.precision)?;
        switchyard_backend_core::decoder::model_for(spec, Box::new(session))
    }

    /// Streams for an encoder on a CPU; one instance of anything else.
    fn max_streams(&self, spec: &ModelSpec, device: &DeviceRef) -> usize {
        let encoder = matches!(spec.stage, StageKind::Embed | StageKind::Classify);
        if encoder && device.device_type == DeviceType::Cpu {
            usize::MAX
        } else {
            1
        }
    }

    /// On a CPU, an encoder (classify/embed) as `streams` sessions over one compiled model;
    /// anything else as [`Backend::load`] does.
    fn load_streams(
        &self,
        spec: &ModelSpec,
        device: &DeviceRef,
        streams: usize,
    ) -> Result<Vec<Box<dyn LoadedModel>>, BackendError> {
        if streams.min(self.max_streams(spec, device)) <= 1 {
            return Ok(vec![self.load(spec, device)?]);
        }
        self.compile_streams(
            &spec.name,
            &spec.onnx,
            device,
            spec.precision,
            None,
            streams,
        )?
        .into_iter()
        .map(|session| switchyard_backend_core::decoder::model_for(spec, Box::new(session)))
        .collect()
    }
}
