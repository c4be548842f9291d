//! Compiling one graph for one OpenVINO device: the properties every compile sets (the
//! performance hint, the precision asked for, threads or the blob cache), optional static
//! input shapes, and the precision read back from the compiled model.

use std::path::Path;

use openvino::{DeviceType as OvDevice, Model, PartialShape, RwPropertyKey};
use switchyard_backend_core::{BackendError, DeviceRef, DeviceType, Precision};

use crate::static_shapes::Bucket;
use crate::{BACKEND_ID, OpenVinoBackend, OpenVinoSession, PERFORMANCE_HINT, available, invalid};
use crate::{openvino_name, session};

/// Fixes every `[batch, sequence]` input of `model` to the bucket's shape.
fn reshape(model: &mut Model, inputs: &mut [(String, Vec<i64>)], b: Bucket) -> Result<(), String> {
    let dims = [b.batch as i64, b.seq as i64];
    let shape = PartialShape::new_static(2, &dims).map_err(|e| e.to_string())?;
    for (name, d) in inputs.iter_mut() {
        if d.len() != 2 {
            return Err(format!(
                "input {name} has rank {}, not [batch, sequence]",
                d.len()
            ));
        }
        model
            .reshape_input_by_name(name, &shape)
            .map_err(|e| format!("input {name}: {e}"))?;
        *d = dims.to_vec();
    }
    Ok(())
}

impl OpenVinoBackend {
    /// Reads `file` and compiles it for `device` at `precision`, with static inputs when a
    /// `bucket` is given. A device that would compute at another precision is refused.
    pub(crate) fn compile(
        &self,
        model: &str,
        file: &Path,
        device: &DeviceRef,
        precision: Precision,
        bucket: Option<Bucket>,
    ) -> Result<OpenVinoSession, BackendError> {
        let mut sessions = self.compile_streams(model, file, device, precision, bucket, 1)?;
        Ok(sessions.remove(0))
    }

    /// [`OpenVinoBackend::compile`] for `streams` sessions (an infer request each) over one
    /// compiled model; on a CPU it is compiled with `NUM_STREAMS` = `streams`, and the plugin
    /// splits `INFERENCE_NUM_THREADS` between them.
    pub(crate) fn compile_streams(
        &self,
        model: &str,
        file: &Path,
        device: &DeviceRef,
        precision: Precision,
        bucket: Option<Bucket>,
        streams: usize,
    ) -> Result<Vec<OpenVinoSession>, BackendError> {
        if !file.is_file() {
            return Err(BackendError::ModelFileMissing(format!(
                "{} (model {model}; run scripts/setup.sh)",
                file.display()
            )));
        }
        let path = file
            .to_str()
            .ok_or_else(|| invalid(model, format!("path {} is not valid UTF-8", file.display())))?;
        let mut core = self.lock_core()?;
        let name = openvino_name(device, &available(&core)?)?;
        let ov_device = OvDevice::from(name.as_str());
        let unsupported = |reason: String| BackendError::DeviceUnsupported {
            backend: BACKEND_ID.into(),
            device: device.id.clone(),
            reason,
        };
        let mut props: Vec<(RwPropertyKey, String)> = vec![
            (
                RwPropertyKey::HintPerformanceMode,
                PERFORMANCE_HINT.to_string(),
            ),
            (
                RwPropertyKey::HintInferencePrecision,
                precision.as_str().to_string(),
            ),
        ];
        match device.device_type {
            DeviceType::Cpu => {
                props.push((RwPropertyKey::InferenceNumThreads, self.threads.to_string()));
                // Always set: a property set on the core stays for the next compile.
                props.push((RwPropertyKey::NumStreams, streams.max(1).to_string()));
            }
            _ => {
                if let Some(dir) = &self.cache_dir
                    && std::fs::create_dir_all(dir).is_ok()
                {
                    props.push((RwPropertyKey::CacheDir, dir.to_string_lossy().into_owned()));
                }
            }
        }
        for (key, value) in &props {
            core.set_property(&ov_device, key, value)
                .map_err(|e| unsupported(format!("cannot set {} on {name}: {e}", key.as_ref())))?;
        }
        // ONNX carries its weights in the file (or beside it): no separate weights path.
        let mut ov_model = core
            .read_model_from_file(path, "")
            .map_err(|e| invalid(model, format!("cannot read {}: {e}", file.display())))?;
        let (mut inputs, outputs) = session::ports(&ov_model)
            .map_err(|e| invalid(model, format!("cannot list the graph's ports: {e}")))?;
        if let Some(b) = bucket {
            reshape(&mut ov_model, &mut inputs, b)
                .map_err(|e| unsupported(format!("cannot make {model} static at {b:?}: {e}")))?;
        }
        let compiled = core.compile_model(&ov_model, ov_device).map_err(|e| {
            let reason = format!("cannot compile {} for {name}: {e}", file.display());
            if device.device_type == DeviceType::Cpu {
                invalid(model, reason)
            } else {
                unsupported(reason)
            }
        })?;
        drop(core);
        let ran = session::compiled_precision(&compiled).map_err(|e| {
            unsupported(format!("cannot read the compiled precision on {name}: {e}"))
        })?;
        if ran != precision {
            return Err(unsupported(format!(
                "{name} computes {model} at {ran} when asked for {precision} \
                 (INFERENCE_PRECISION_HINT read back from the compiled model)"
            )));
        }
        OpenVinoSession::streams(compiled, streams, inputs, outputs, name, ran)
            .map_err(|e| BackendError::Inference(format!("cannot create an infer request: {e}")))
    }
}
