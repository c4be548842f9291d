//! Measuring a device's int8 throughput with an `N×N` uint8 × int8 → int32 matmul.

use std::path::Path;
use std::time::Instant;

use openvino::{ElementType, Shape};
use switchyard_backend_core::{BackendError, DeviceRef};

use crate::OpenVinoBackend;
use crate::session::raw_tensor;

/// Deterministic operands: A in [0, 255], B in [-64, 63] (keeps int32 sums far from
/// overflow and avoids the u8×i8 saturation some int8 kernels apply).
fn operands(n: usize) -> (Vec<u8>, Vec<i8>) {
    let mut state: u32 = 0x9E37_79B9;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let a = (0..n * n).map(|_| (next() & 0xFF) as u8).collect();
    let b = (0..n * n)
        .map(|_| ((next() & 0x7F) as i32 - 64) as i8)
        .collect();
    (a, b)
}

/// Runs `model` (inputs `A` uint8 `[N, N]`, `B` int8 `[N, N]` → int32 `[N, N]`, e.g.
/// `<models>/calibrate/matmul_int8.onnx`) on `device`, once to warm up and then
/// `iterations` times, and returns integer operations per second (`2·N³` per run).
/// The first output element is checked against a reference dot product.
pub fn calibrate(
    device: &DeviceRef,
    model: &Path,
    n: usize,
    iterations: usize,
) -> Result<f64, BackendError> {
    OpenVinoBackend::new()?.calibrate(device, model, n, iterations)
}

impl OpenVinoBackend {
    /// See [`calibrate`]; uses this backend's core and thread setting.
    pub fn calibrate(
        &self,
        device: &DeviceRef,
        model: &Path,
        n: usize,
        iterations: usize,
    ) -> Result<f64, BackendError> {
        if n == 0 || iterations == 0 {
            return Err(BackendError::InvalidInput(
                "calibration needs n > 0 and iterations > 0".into(),
            ));
        }
        // Integer matmul: any precision the device honours will do.
        let mut s = switchyard_backend_core::probe::first_precision(
            &switchyard_backend_core::PRECISIONS,
            |p| self.open("calibrate", model, device, p),
        )?;
        let (a, b) = operands(n);
        let shape = Shape::new(&[n as i64, n as i64])
            .map_err(|e| BackendError::InvalidInput(format!("matrix size {n}: {e}")))?;
        let bytes_b: Vec<u8> = b.iter().map(|&x| x as u8).collect();
        let ta = raw_tensor(ElementType::U8, &shape, &a)
            .map_err(|e| BackendError::Inference(format!("operand A: {e}")))?;
        let tb = raw_tensor(ElementType::I8, &shape, &bytes_b)
            .map_err(|e| BackendError::Inference(format!("operand B: {e}")))?;
        s.set_raw("A", &ta)?;
        s.set_raw("B", &tb)?;
        s.infer()?;
        let output = session_output(&s)?;
        let c = s.raw_output(&output)?;
        let raw = c
            .get_raw_data()
            .map_err(|e| BackendError::Inference(format!("output {output}: {e}")))?;
        if raw.len() != n * n * 4 {
            return Err(BackendError::InvalidModel {
                model: model.display().to_string(),
                reason: format!("output has {} bytes, expected int32 [{n}, {n}]", raw.len()),
            });
        }
        let got = i32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let want: i32 = (0..n).map(|k| i32::from(a[k]) * i32::from(b[k * n])).sum();
        if got != want {
            return Err(BackendError::Inference(format!(
                "calibration matmul is wrong on {}: C[0,0] = {got}, expected {want}",
                s.device()
            )));
        }
        let start = Instant::now();
        for _ in 0..iterations {
            s.infer()?;
        }
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        Ok(2.0 * (n as f64).powi(3) * iterations as f64 / secs)
    }
}

fn session_output(s: &crate::OpenVinoSession) -> Result<String, BackendError> {
    use switchyard_backend_core::session::Session;
    s.output_names()
        .into_iter()
        .next()
        .ok_or_else(|| BackendError::InvalidModel {
            model: "calibrate".into(),
            reason: "graph has no outputs".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operands_stay_in_range_and_are_deterministic() {
        let (a, b) = operands(16);
        assert_eq!(a.len(), 256);
        assert!(b.iter().all(|&x| (-64..=63).contains(&x)));
        assert!(b.iter().any(|&x| x < 0) && b.iter().any(|&x| x > 0));
        assert_eq!(operands(16), (a, b));
    }
}
