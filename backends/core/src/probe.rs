//! The probe: a tiny graph (`<models>/probe/tiny.onnx`, `Y = X·W + b`, X and Y `[1, 4]`)
//! that proves a backend really executes on a device.

use std::path::PathBuf;

use crate::BackendError;
use crate::paths;
use crate::session::{Session, Tensor};

/// `<models>/probe/tiny.onnx`.
pub fn probe_model() -> PathBuf {
    paths::models_dir().join("probe/tiny.onnx")
}

/// Runs the probe graph once on `session`; the output must be `[1, 4]` finite floats.
pub fn run_probe(session: &mut dyn Session) -> Result<(), BackendError> {
    let input = session
        .input_names()
        .first()
        .cloned()
        .ok_or_else(|| BackendError::Inference("probe model has no input".into()))?;
    let output = session
        .output_names()
        .first()
        .cloned()
        .ok_or_else(|| BackendError::Inference("probe model has no output".into()))?;
    let out = session.run(
        vec![(input, Tensor::f32(vec![1, 4], vec![1.0, 2.0, 3.0, 4.0]))],
        std::slice::from_ref(&output),
    )?;
    let (shape, data) = out
        .into_iter()
        .next()
        .ok_or_else(|| BackendError::Inference("probe returned nothing".into()))?
        .into_f32(&output)?;
    if shape != [1, 4] || data.iter().any(|v| !v.is_finite()) {
        return Err(BackendError::Inference(format!(
            "probe returned shape {shape:?} values {data:?}"
        )));
    }
    Ok(())
}
