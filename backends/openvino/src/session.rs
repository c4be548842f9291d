//! [`Session`] over an OpenVINO compiled model and one infer request.
//!
//! (Note from the `backends` helper: this file was accidentally overwritten while two of us
//! worked in this crate; it was rewritten to the interface `lib.rs` uses — `ports`,
//! `OpenVinoSession::streams` — and implements `Session::run_keep` for the KV cache.)

use std::sync::{Arc, Mutex};

use openvino::{
    CompiledModel, ElementType, InferRequest, Model, PropertyKey, RwPropertyKey, Shape,
};
use switchyard_backend_core::session::{Session, Tensor, TensorData};
use switchyard_backend_core::{BackendError, Precision};

/// Names and declared dimensions (-1 = dynamic) of a graph's inputs, and its output names.
pub type Ports = (Vec<(String, Vec<i64>)>, Vec<String>);

/// Lists `model`'s inputs (with dimensions) and outputs.
pub fn ports(model: &Model) -> Result<Ports, openvino::InferenceError> {
    let mut inputs = Vec::new();
    for i in 0..model.get_inputs_len()? {
        let node = model.get_input_by_index(i)?;
        let dims = node
            .get_partial_shape()
            .map(|s| {
                s.get_dimensions()
                    .iter()
                    .map(|d| if d.is_dynamic() { -1 } else { d.get_min() })
                    .collect()
            })
            .unwrap_or_default();
        inputs.push((node.get_name()?, dims));
    }
    let mut outputs = Vec::new();
    for i in 0..model.get_outputs_len()? {
        outputs.push(model.get_output_by_index(i)?.get_name()?);
    }
    Ok((inputs, outputs))
}

/// The precision a compiled model computes at: its `INFERENCE_PRECISION_HINT`, read back.
pub fn compiled_precision(compiled: &CompiledModel) -> Result<Precision, String> {
    let value = compiled
        .get_property(&PropertyKey::Rw(RwPropertyKey::HintInferencePrecision))
        .map_err(|e| e.to_string())?;
    value
        .parse()
        .map_err(|e: switchyard_backend_core::precision::UnknownPrecision| e.to_string())
}

/// A model compiled for one OpenVINO device, with its infer request. The sessions of a
/// model compiled for several streams share the compiled model (and its weights), each with
/// a request of its own.
pub struct OpenVinoSession {
    request: InferRequest,
    /// Kept alive for the request's sake, and asked for its properties.
    compiled: Arc<Mutex<CompiledModel>>,
    inputs: Vec<(String, Vec<i64>)>,
    outputs: Vec<String>,
    device: String,
    precision: Precision,
    /// Tensors kept by `run_keep`, by the input name they feed next time.
    kept: Vec<(String, openvino::Tensor)>,
}

fn infer_err(e: impl std::fmt::Display) -> BackendError {
    BackendError::Inference(e.to_string())
}

/// Each input's name and dimensions.
pub type InputShapes = Vec<(String, Vec<i64>)>;

impl OpenVinoSession {
    /// Each input's shape as the compiled model has it, read back from OpenVINO (static
    /// dimensions; -1 where dynamic).
    pub fn compiled_input_shapes(&self) -> Result<InputShapes, String> {
        let compiled = self.compiled.lock().map_err(|e| e.to_string())?;
        let n = compiled.get_input_size().map_err(|e| e.to_string())?;
        (0..n)
            .map(|i| {
                let node = compiled.get_input_by_index(i).map_err(|e| e.to_string())?;
                let name = node.get_name().map_err(|e| e.to_string())?;
                let dims = match node.get_shape() {
                    Ok(shape) => shape.get_dimensions().to_vec(),
                    Err(_) => vec![-1],
                };
                Ok((name, dims))
            })
            .collect()
    }
}

impl OpenVinoSession {
    /// `streams` sessions over one compiled model (for OpenVINO device `device`, computing at
    /// `precision`; at least one), each with its own infer request: they may run at the same
    /// time on different threads.
    pub fn streams(
        mut compiled: CompiledModel,
        streams: usize,
        inputs: Vec<(String, Vec<i64>)>,
        outputs: Vec<String>,
        device: String,
        precision: Precision,
    ) -> Result<Vec<Self>, openvino::InferenceError> {
        let requests = (0..streams.max(1))
            .map(|_| compiled.create_infer_request())
            .collect::<Result<Vec<_>, _>>()?;
        let compiled = Arc::new(Mutex::new(compiled));
        Ok(requests
            .into_iter()
            .map(|request| OpenVinoSession {
                request,
                compiled: compiled.clone(),
                inputs: inputs.clone(),
                outputs: outputs.clone(),
                device: device.clone(),
                precision,
                kept: Vec::new(),
            })
            .collect())
    }

    /// `INFERENCE_PRECISION_HINT` of the compiled model, read from the runtime now, as the
    /// runtime spells it (`f32`, `bf16`, ...).
    pub fn runtime_precision_hint(&self) -> Result<String, BackendError> {
        self.compiled
            .lock()
            .map_err(|_| BackendError::Inference("compiled model lock poisoned".into()))?
            .get_property(&PropertyKey::Rw(RwPropertyKey::HintInferencePrecision))
            .map(|v| v.into_owned())
            .map_err(infer_err)
    }

    /// The OpenVINO device this session was compiled for.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// Sets input `name` to an OpenVINO tensor as is (no copy).
    pub fn set_raw(&mut self, name: &str, tensor: &openvino::Tensor) -> Result<(), BackendError> {
        self.request
            .set_tensor(name, tensor)
            .map_err(|e| BackendError::Inference(format!("input {name}: {e}")))
    }

    /// Runs the request on the tensors set so far.
    pub fn infer(&mut self) -> Result<(), BackendError> {
        self.request.infer().map_err(infer_err)
    }

    /// The request's tensor for output `name` (owned by the request; valid until the next
    /// inference).
    pub fn raw_output(&self, name: &str) -> Result<openvino::Tensor, BackendError> {
        self.request
            .get_tensor(name)
            .map_err(|e| BackendError::Inference(format!("output {name}: {e}")))
    }
}

/// A tensor of element type `ty` and `shape` holding a copy of `bytes`.
pub fn raw_tensor(
    ty: ElementType,
    shape: &Shape,
    bytes: &[u8],
) -> Result<openvino::Tensor, openvino::InferenceError> {
    let mut t = openvino::Tensor::new(ty, shape)?;
    if !bytes.is_empty() {
        let dst = t.get_raw_data_mut()?;
        let n = dst.len().min(bytes.len());
        dst[..n].copy_from_slice(&bytes[..n]);
    }
    Ok(t)
}

/// Primitive numbers: no padding, every bit pattern initialised.
trait Plain: Copy {}
impl Plain for f32 {}
impl Plain for i64 {}
impl Plain for i32 {}
impl Plain for u8 {}
impl Plain for i8 {}

/// Reinterprets plain numbers as bytes without a copy (tensors are copied once, into the
/// runtime's buffer; a safe `to_ne_bytes` conversion would add a second copy per KV-cache
/// tensor per generated token).
#[allow(unsafe_code)]
fn as_bytes<T: Plain>(v: &[T]) -> &[u8] {
    // SAFETY: T is a primitive number type (f32, i64, i32, u8, i8): no padding, every byte
    // initialised; the slice covers exactly the same memory.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

fn to_ov(t: &Tensor) -> Result<openvino::Tensor, BackendError> {
    let (ty, bytes) = match &t.data {
        TensorData::F32(d) => (ElementType::F32, as_bytes(d)),
        TensorData::I64(d) => (ElementType::I64, as_bytes(d)),
        TensorData::I32(d) => (ElementType::I32, as_bytes(d)),
        TensorData::U8(d) => (ElementType::U8, as_bytes(d)),
        TensorData::I8(d) => (ElementType::I8, as_bytes(d)),
    };
    let dims: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
    let shape = Shape::new(&dims).map_err(infer_err)?;
    let mut out = openvino::Tensor::new(ty, &shape).map_err(infer_err)?;
    if !bytes.is_empty() {
        let dst = out.get_raw_data_mut().map_err(infer_err)?;
        if dst.len() != bytes.len() {
            return Err(BackendError::InvalidInput(format!(
                "tensor of shape {:?} holds {} bytes, expected {}",
                t.shape,
                bytes.len(),
                dst.len()
            )));
        }
        dst.copy_from_slice(bytes);
    }
    Ok(out)
}

fn shape_of(t: &openvino::Tensor) -> Result<Vec<usize>, BackendError> {
    Ok(t.get_shape()
        .map_err(infer_err)?
        .get_dimensions()
        .iter()
        .map(|&d| d.max(0) as usize)
        .collect())
}

/// A copy of `t` that the infer request does not own.
fn detach(t: &openvino::Tensor) -> Result<openvino::Tensor, BackendError> {
    let ty = t.get_element_type().map_err(infer_err)?;
    let shape = t.get_shape().map_err(infer_err)?;
    let mut out = openvino::Tensor::new(ty, &shape).map_err(infer_err)?;
    if t.get_byte_size().map_err(infer_err)? > 0 {
        let src = t.get_raw_data().map_err(infer_err)?;
        out.get_raw_data_mut()
            .map_err(infer_err)?
            .copy_from_slice(src);
    }
    Ok(out)
}

fn read_f32(name: &str, t: &openvino::Tensor) -> Result<Tensor, BackendError> {
    let shape = shape_of(t)?;
    if t.get_element_type().map_err(infer_err)? != ElementType::F32 {
        return Err(BackendError::Inference(format!(
            "output {name} is not float32"
        )));
    }
    let data = if t.get_byte_size().map_err(infer_err)? == 0 {
        Vec::new()
    } else {
        t.get_raw_data()
            .map_err(infer_err)?
            .chunks_exact(4)
            .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    Ok(Tensor::f32(shape, data))
}

impl Session for OpenVinoSession {
    fn input_names(&self) -> Vec<String> {
        self.inputs.iter().map(|(n, _)| n.clone()).collect()
    }

    fn output_names(&self) -> Vec<String> {
        self.outputs.clone()
    }

    fn precision(&self) -> Precision {
        self.precision
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
        for (name, t) in &inputs {
            if !self.inputs.iter().any(|(n, _)| n == name) {
                return Err(BackendError::InvalidInput(format!(
                    "the graph has no input {name}"
                )));
            }
            let ov = to_ov(t)?;
            self.request.set_tensor(name, &ov).map_err(infer_err)?;
        }
        for (name, t) in std::mem::take(&mut self.kept) {
            if !inputs.iter().any(|(n, _)| *n == name) {
                self.request.set_tensor(&name, &t).map_err(infer_err)?;
            }
        }
        self.request.infer().map_err(infer_err)?;
        let result = outputs
            .iter()
            .map(|name| {
                let t = self.request.get_tensor(name).map_err(infer_err)?;
                read_f32(name, &t)
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (output, input) in keep {
            let t = self.request.get_tensor(output).map_err(infer_err)?;
            self.kept.push((input.clone(), detach(&t)?));
        }
        Ok(result)
    }

    fn clear_kept(&mut self) {
        self.kept.clear();
    }
}
