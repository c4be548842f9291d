//! The probe: a tiny graph (`<models>/probe/tiny.onnx`, `Y = X·W + b`, X and Y `[1, 4]`)
//! that proves a backend really executes on a device.

use std::path::PathBuf;

use crate::paths;
use crate::session::{Session, Tensor};
use crate::{BackendError, Precision};

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

/// Runs `attempt` at each of `precisions` and returns those that worked, in order; when none
/// did, the first precision's error (the reason the backend does not run at all).
pub fn probe_precisions(
    precisions: &[Precision],
    mut attempt: impl FnMut(Precision) -> Result<(), BackendError>,
) -> Result<Vec<Precision>, BackendError> {
    let mut ok = Vec::new();
    let mut first_error = None;
    for &p in precisions {
        match attempt(p) {
            Ok(()) => ok.push(p),
            Err(e) => {
                tracing::debug!(precision = %p, error = %e, "probe precision refused");
                first_error.get_or_insert(e);
            }
        }
    }
    if !ok.is_empty() {
        return Ok(ok);
    }
    Err(first_error.unwrap_or_else(|| BackendError::Inference("no precision to probe".into())))
}

/// The result of `open` at the first of `precisions` the device accepts (calibration and
/// other measurements where any honoured precision will do); else the first error.
pub fn first_precision<T>(
    precisions: &[Precision],
    mut open: impl FnMut(Precision) -> Result<T, BackendError>,
) -> Result<T, BackendError> {
    let mut first_error = None;
    for &p in precisions {
        match open(p) {
            Ok(t) => return Ok(t),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| BackendError::Inference("no precision to try".into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_keeps_the_precisions_that_ran_and_reports_why_none_did() {
        let got = probe_precisions(&crate::PRECISIONS, |p| match p {
            Precision::Bf16 => Err(BackendError::Inference("no bf16".into())),
            _ => Ok(()),
        })
        .unwrap();
        assert_eq!(got, vec![Precision::F32, Precision::F16]);
        let err = probe_precisions(&crate::PRECISIONS, |p| {
            Err(BackendError::Inference(format!("refused {p}")))
        })
        .unwrap_err();
        assert!(err.to_string().contains("refused f32"), "{err}");
        let first = first_precision(&crate::PRECISIONS, |p| match p {
            Precision::F32 => Err(BackendError::Inference("npu".into())),
            other => Ok(other),
        });
        assert_eq!(first.unwrap(), Precision::F16);
    }
}
