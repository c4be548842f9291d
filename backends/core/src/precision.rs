//! The floating-point precision a model computes at.
//!
//! A registry entry asks for one (`precision = "f32"`, the default); a backend either runs the
//! model at exactly that precision and says so ([`crate::session::Session::precision`] reads
//! it back from the runtime), or refuses the load. Nothing is left to a runtime's default:
//! OpenVINO's CPU plugin, for one, silently computes in bf16 on CPUs with AVX512_BF16 or AMX
//! unless told otherwise, so the same model would give different numbers on different hosts.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A compute precision for activations and float weights (integer-quantised weights stay
/// integer whatever the precision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// IEEE single precision: the reference every backend can be compared against.
    #[default]
    F32,
    /// IEEE half precision (what Intel NPUs compute in).
    F16,
    /// bfloat16 (AVX512_BF16 / AMX CPUs, recent GPUs).
    Bf16,
}

/// Every precision, in the order probes try them.
pub const PRECISIONS: [Precision; 3] = [Precision::F32, Precision::F16, Precision::Bf16];

impl Precision {
    /// The name used in the registry, traces and metrics: `f32`, `f16`, `bf16` (also
    /// OpenVINO's spelling of `INFERENCE_PRECISION_HINT` values).
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A precision name no backend knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown precision {0:?} (known: f32, f16, bf16)")]
pub struct UnknownPrecision(pub String);

impl FromStr for Precision {
    type Err = UnknownPrecision;

    /// Accepts the short names and the long spellings runtimes print (`float32`, `FP16`,
    /// `bfloat16`), case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Precision::F32),
            "f16" | "fp16" | "float16" => Ok(Precision::F16),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            _ => Err(UnknownPrecision(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_runtime_spellings_parse() {
        for p in PRECISIONS {
            assert_eq!(p.as_str().parse::<Precision>(), Ok(p));
        }
        assert_eq!("bfloat16".parse::<Precision>(), Ok(Precision::Bf16));
        assert_eq!("FP16".parse::<Precision>(), Ok(Precision::F16));
        assert_eq!("float32".parse::<Precision>(), Ok(Precision::F32));
        assert!("int4".parse::<Precision>().is_err());
        assert_eq!(Precision::default(), Precision::F32);
    }
}
