//! [`Session`] over an `ort::session::Session`.

use std::path::Path;

use ort::session::Session as OrtInner;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{DynValue, Tensor as OrtTensor};
use switchyard_backend_core::session::{Session, Tensor, TensorData};
use switchyard_backend_core::{BackendError, Precision};

use crate::Provider;

/// A compiled ONNX graph on one execution provider.
pub struct OrtSession {
    inner: OrtInner,
    inputs: Vec<(String, Vec<i64>)>,
    outputs: Vec<String>,
    /// Values kept by `run_keep`, by the input name they feed next time.
    kept: Vec<(String, DynValue)>,
}

fn invalid(model: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError::InvalidModel {
        model: model.into(),
        reason: e.to_string(),
    }
}

impl OrtSession {
    /// Compiles `file` for `provider` (device `ordinal` for GPUs) with `threads` intra-op
    /// threads. A GPU provider that fails to register is an error.
    pub fn open(
        model: &str,
        file: &Path,
        provider: Provider,
        ordinal: u32,
        threads: usize,
    ) -> Result<Self, BackendError> {
        let runtime = crate::runtime()?;
        if !file.is_file() {
            return Err(BackendError::ModelFileMissing(format!(
                "{} (model {model}; run scripts/setup.sh)",
                file.display()
            )));
        }
        let mut builder = OrtInner::builder(&runtime.environment)
            .map_err(|e| BackendError::Inference(e.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| BackendError::Inference(e.to_string()))?
            .with_intra_threads(threads)
            .map_err(|e| BackendError::Inference(e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| BackendError::Inference(e.to_string()))?;
        let unsupported = |reason: String| BackendError::DeviceUnsupported {
            backend: provider.id().into(),
            device: format!("{}:{ordinal}", provider.id()),
            reason,
        };
        match provider {
            Provider::Cpu => {}
            #[cfg(feature = "cuda")]
            Provider::Cuda => {
                let ep = ort::ep::CUDA::default()
                    .with_device_id(ordinal as i32)
                    .build()
                    .error_on_failure();
                builder = builder
                    .with_execution_providers([ep])
                    .map_err(|e| unsupported(format!("CUDA execution provider unavailable: {e} (install onnxruntime-gpu and the CUDA runtime)")))?
                    // A node CUDA cannot run is an error, never a silent CPU computation.
                    .with_disable_cpu_fallback()
                    .map_err(|e| unsupported(format!("cannot disable the CPU fallback: {e}")))?;
            }
            #[cfg(feature = "tensorrt")]
            Provider::TensorRt => {
                let ep = ort::ep::TensorRT::default()
                    .with_device_id(ordinal as i32)
                    .build()
                    .error_on_failure();
                builder = builder
                    .with_execution_providers([ep])
                    .map_err(|e| unsupported(format!("TensorRT execution provider unavailable: {e} (install onnxruntime-gpu and TensorRT)")))?
                    .with_disable_cpu_fallback()
                    .map_err(|e| unsupported(format!("cannot disable the CPU fallback: {e}")))?;
            }
            #[allow(unreachable_patterns)]
            other => {
                return Err(unsupported(format!(
                    "{} support not compiled in",
                    other.id()
                )));
            }
        }
        let inner = builder
            .commit_from_file(file)
            .map_err(|e| invalid(model, format!("cannot load {}: {e}", file.display())))?;
        let inputs = inner
            .inputs()
            .iter()
            .map(|o| {
                let dims = o
                    .dtype()
                    .tensor_shape()
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default();
                (o.name().to_string(), dims)
            })
            .collect();
        let outputs = inner
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        Ok(OrtSession {
            inner,
            inputs,
            outputs,
            kept: Vec::new(),
        })
    }
}

fn to_value(t: Tensor) -> Result<DynValue, BackendError> {
    let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
    let v = match t.data {
        TensorData::F32(d) => OrtTensor::from_array((shape, d)).map(|t| t.into_dyn()),
        TensorData::I64(d) => OrtTensor::from_array((shape, d)).map(|t| t.into_dyn()),
        TensorData::I32(d) => OrtTensor::from_array((shape, d)).map(|t| t.into_dyn()),
        TensorData::U8(d) => OrtTensor::from_array((shape, d)).map(|t| t.into_dyn()),
        TensorData::I8(d) => OrtTensor::from_array((shape, d)).map(|t| t.into_dyn()),
    };
    v.map_err(|e| BackendError::Inference(format!("cannot build input tensor: {e}")))
}

impl Session for OrtSession {
    fn input_names(&self) -> Vec<String> {
        self.inputs.iter().map(|(n, _)| n.clone()).collect()
    }

    fn output_names(&self) -> Vec<String> {
        self.outputs.clone()
    }

    fn precision(&self) -> Precision {
        // ORT has no precision hint: float32 graphs run at float32 (see the crate docs).
        Precision::F32
    }

    fn input_dims(&self, name: &str) -> Option<Vec<i64>> {
        self.inputs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.clone())
    }

    fn run(
        &mut self,
        inputs: Vec<(String, Tensor)>,
        outputs: &[String],
    ) -> Result<Vec<Tensor>, BackendError> {
        self.run_keep(inputs, outputs, &[])
    }

    fn run_keep(
        &mut self,
        inputs: Vec<(String, Tensor)>,
        outputs: &[String],
        keep: &[(String, String)],
    ) -> Result<Vec<Tensor>, BackendError> {
        let mut values: Vec<(String, DynValue)> =
            Vec::with_capacity(inputs.len() + self.kept.len());
        for (name, t) in inputs {
            values.push((name, to_value(t)?));
        }
        for (name, v) in std::mem::take(&mut self.kept) {
            if !values.iter().any(|(n, _)| *n == name) {
                values.push((name, v));
            }
        }
        let mut out = self
            .inner
            .run(values)
            .map_err(|e| BackendError::Inference(e.to_string()))?;
        let result = outputs
            .iter()
            .map(|name| {
                let v = out
                    .get(name)
                    .ok_or_else(|| BackendError::Inference(format!("no output {name}")))?;
                let (shape, data) = v
                    .try_extract_tensor::<f32>()
                    .map_err(|e| BackendError::Inference(format!("output {name}: {e}")))?;
                Ok(Tensor::f32(
                    shape.iter().map(|&d| d.max(0) as usize).collect(),
                    data.to_vec(),
                ))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (output, input) in keep {
            let v = out
                .remove(output)
                .ok_or_else(|| BackendError::Inference(format!("no output {output}")))?;
            self.kept.push((input.clone(), v));
        }
        Ok(result)
    }

    fn clear_kept(&mut self) {
        self.kept.clear();
    }
}
