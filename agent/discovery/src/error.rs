//! Errors of the discovery crate. Missing hardware or drivers are never errors (they give an
//! empty device list); these are for bad fixture files and failing vendor libraries.

use std::path::PathBuf;

/// A discovery failure.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// A recorded fixture (NVML, Vulkan) could not be read.
    #[error("cannot read fixture {path}: {source}")]
    FixtureIo {
        /// The fixture file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A recorded fixture (NVML, Vulkan) is not valid JSON of the expected shape.
    #[error("invalid fixture {path}: {source}")]
    FixtureFormat {
        /// The fixture file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// NVML answered with an error.
    #[error("NVML {call} failed: {source}")]
    Nvml {
        /// The NVML call.
        call: &'static str,
        /// The NVML error.
        source: nvml_wrapper::error::NvmlError,
    },
    /// A device asked about is not known to the source.
    #[error("unknown device {0}")]
    UnknownDevice(String),
    /// Level Zero answered with an error code.
    #[error("Level Zero {call} returned 0x{code:08x}")]
    LevelZero {
        /// The Level Zero call.
        call: &'static str,
        /// The `ze_result_t` code.
        code: u32,
    },
}
