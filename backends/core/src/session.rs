//! The runtime-agnostic session: named tensors in, named tensors out. ONNX Runtime and
//! OpenVINO implement it; the model logic ([`crate::encoder`], [`crate::decoder`]) is
//! written once on top of it.

use crate::{BackendError, Precision};

/// Tensor element data.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 64-bit signed integers (token ids, masks, positions).
    I64(Vec<i64>),
    /// 32-bit signed integers.
    I32(Vec<i32>),
    /// Unsigned bytes.
    U8(Vec<u8>),
    /// Signed bytes.
    I8(Vec<i8>),
}

/// A dense row-major tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Size of each dimension, outermost first.
    pub shape: Vec<usize>,
    /// The elements, row-major; their count is the product of `shape`.
    pub data: TensorData,
}

impl Tensor {
    /// An f32 tensor.
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Self {
        Tensor {
            shape,
            data: TensorData::F32(data),
        }
    }

    /// An i64 tensor.
    pub fn i64(shape: Vec<usize>, data: Vec<i64>) -> Self {
        Tensor {
            shape,
            data: TensorData::I64(data),
        }
    }

    /// The f32 data, or an error naming `what`.
    pub fn into_f32(self, what: &str) -> Result<(Vec<usize>, Vec<f32>), BackendError> {
        match self.data {
            TensorData::F32(v) => Ok((self.shape, v)),
            _ => Err(BackendError::Inference(format!(
                "output {what} is not float32"
            ))),
        }
    }
}

/// One compiled model on one device.
pub trait Session: Send {
    /// Names of the graph's inputs.
    fn input_names(&self) -> Vec<String>;
    /// Names of the graph's outputs.
    fn output_names(&self) -> Vec<String>;
    /// The precision the runtime compiled the graph for, as the runtime reports it.
    fn precision(&self) -> Precision;
    /// Declared dimensions of an input (-1 for dynamic), when the runtime knows them.
    fn input_dims(&self, name: &str) -> Option<Vec<i64>> {
        let _ = name;
        None
    }
    /// Runs the graph; returns the requested outputs in the order asked.
    fn run(
        &mut self,
        inputs: Vec<(String, Tensor)>,
        outputs: &[String],
    ) -> Result<Vec<Tensor>, BackendError>;

    /// Runs the graph like [`Session::run`], but also feeds back state without copying it
    /// through Rust: for each `(output, input)` pair in `keep`, the value of `output` from
    /// this run is kept inside the session and given as `input` on the next call (unless
    /// that call passes `input` explicitly). This is how the KV cache (`present.*` →
    /// `past_key_values.*`) stays on the runtime's side between decode steps.
    fn run_keep(
        &mut self,
        inputs: Vec<(String, Tensor)>,
        outputs: &[String],
        keep: &[(String, String)],
    ) -> Result<Vec<Tensor>, BackendError>;

    /// Drops the values kept by [`Session::run_keep`].
    fn clear_kept(&mut self);
}

/// Checks that a session has the inputs and outputs a stage needs.
pub fn require_io(
    model: &str,
    session: &dyn Session,
    inputs: &[&str],
    outputs: &[&str],
) -> Result<(), BackendError> {
    let have_in = session.input_names();
    let have_out = session.output_names();
    for i in inputs {
        if !have_in.iter().any(|h| h == i) {
            return Err(BackendError::InvalidModel {
                model: model.into(),
                reason: format!("graph has no input '{i}' (inputs: {have_in:?})"),
            });
        }
    }
    for o in outputs {
        if !have_out.iter().any(|h| h == o) {
            return Err(BackendError::InvalidModel {
                model: model.into(),
                reason: format!("graph has no output '{o}' (outputs: {have_out:?})"),
            });
        }
    }
    Ok(())
}
