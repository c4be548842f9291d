//! Measured throughput of a backend on a device: `<models>/calibrate/matmul_int8.onnx`
//! (MatMulInteger, uint8 × int8 → int32, `[N, N]`) for a few sizes, reported as effective
//! int8 TOPS (2·N³ ops per run). When the int8 graph does not run, `matmul_f32.onnx` is
//! measured instead and the result says so.

use std::time::{Duration, Instant};

use switchyard_backend_core::probe::first_precision;
use switchyard_backend_core::session::{Session, Tensor, TensorData};
use switchyard_backend_core::{Backend, BackendError, DeviceRef, PRECISIONS, Precision, paths};

/// Matrix sizes measured.
pub const SIZES: [usize; 3] = [256, 512, 1024];

/// One calibration result.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// Best effective throughput, tera-ops per second.
    pub tops: f64,
    /// `int8` (MatMulInteger) or `f32` (MatMul fallback).
    pub precision: &'static str,
    /// `(N, TOPS)` per size measured.
    pub per_size: Vec<(usize, f64)>,
    /// Why the fallback was used, if it was.
    pub note: Option<String>,
}

fn operands(n: usize, int8: bool) -> (Tensor, Tensor) {
    // Deterministic, non-trivial values (a constant matrix could be folded away).
    let mut x = 0x2545_f491u32;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let shape = vec![n, n];
    if int8 {
        let a: Vec<u8> = (0..n * n).map(|_| (next() % 16) as u8).collect();
        let b: Vec<i8> = (0..n * n).map(|_| (next() % 16) as i8 - 8).collect();
        (
            Tensor {
                shape: shape.clone(),
                data: TensorData::U8(a),
            },
            Tensor {
                shape,
                data: TensorData::I8(b),
            },
        )
    } else {
        let a: Vec<f32> = (0..n * n).map(|_| (next() % 16) as f32 / 16.0).collect();
        let b: Vec<f32> = (0..n * n).map(|_| (next() % 16) as f32 / 16.0).collect();
        (Tensor::f32(shape.clone(), a), Tensor::f32(shape, b))
    }
}

/// Runs the matmul graph on `session` for every size in `sizes`; each size runs until
/// `budget` has passed (at least twice, the first run being a warm-up).
pub fn measure(
    session: &mut dyn Session,
    int8: bool,
    sizes: &[usize],
    budget: Duration,
) -> Result<Vec<(usize, f64)>, BackendError> {
    let mut out = Vec::new();
    for &n in sizes {
        let (a, b) = operands(n, int8);
        let run = |s: &mut dyn Session| {
            s.run(vec![("A".into(), a.clone()), ("B".into(), b.clone())], &[])
        };
        run(session)?;
        let started = Instant::now();
        let mut best = f64::INFINITY;
        let mut runs = 0;
        while runs < 2 || started.elapsed() < budget {
            let t = Instant::now();
            run(session)?;
            best = best.min(t.elapsed().as_secs_f64());
            runs += 1;
            if runs >= 50 {
                break;
            }
        }
        let ops = 2.0 * (n as f64).powi(3);
        out.push((n, ops / best.max(1e-9) / 1e12));
    }
    Ok(out)
}

/// Calibrates `backend` on `device`.
pub fn calibrate(backend: &dyn Backend, device: &DeviceRef) -> Result<Calibration, BackendError> {
    let dir = paths::models_dir().join("calibrate");
    let budget = Duration::from_millis(300);
    // Integer matmul: any float precision the device honours will do (NPUs refuse f32).
    let int8 = first_precision(&PRECISIONS, |p| {
        backend.session("calibrate-int8", &dir.join("matmul_int8.onnx"), device, p)
    })
    .and_then(|mut s| measure(s.as_mut(), true, &SIZES, budget));
    let (precision, per_size, note) = match int8 {
        Ok(p) => ("int8", p, None),
        Err(e) => {
            let mut s = backend.session(
                "calibrate-f32",
                &dir.join("matmul_f32.onnx"),
                device,
                Precision::F32,
            )?;
            let p = measure(s.as_mut(), false, &SIZES, budget)?;
            (
                "f32",
                p,
                Some(format!(
                    "int8 MatMulInteger did not run ({e}); measured float32 MatMul instead"
                )),
            )
        }
    };
    let tops = per_size.iter().map(|p| p.1).fold(0.0, f64::max);
    Ok(Calibration {
        tops,
        precision,
        per_size,
        note,
    })
}
