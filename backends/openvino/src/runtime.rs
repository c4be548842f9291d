//! Loading the OpenVINO C library once per process.
//!
//! The PyPI `openvino` wheel ships only a versioned `libopenvino_c.so.NNNN`, which
//! `openvino-finder` does not look for; so the library is located with
//! [`paths::OPENVINO`] and loaded with `openvino_sys::library::load_from` before
//! the first `Core::new()` (which then finds it already loaded).

use std::path::PathBuf;
use std::sync::OnceLock;

use openvino::Core;
use switchyard_backend_core::{BackendError, paths};

static LIBRARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Loads `libopenvino_c` (found by [`paths::OPENVINO`]) once per process and returns its
/// path.
pub fn load_library() -> Result<&'static PathBuf, BackendError> {
    LIBRARY
        .get_or_init(|| {
            let library = paths::OPENVINO.find()?;
            openvino_sys::library::load_from(&library)
                .map_err(|e| format!("cannot load {}: {e}", library.display()))?;
            tracing::debug!(library = %library.display(), "OpenVINO loaded");
            Ok(library)
        })
        .as_ref()
        .map_err(|e| BackendError::RuntimeUnavailable(e.clone()))
}

/// A new OpenVINO core on the process's library.
pub fn new_core() -> Result<Core, BackendError> {
    load_library()?;
    Core::new().map_err(|e| {
        BackendError::RuntimeUnavailable(format!(
            "cannot create the OpenVINO core: {e} (run scripts/setup.sh)"
        ))
    })
}

/// The loaded runtime's version, e.g. `2026.4.1-...`.
pub fn version() -> Result<String, BackendError> {
    load_library()?;
    Ok(openvino::version().build_number)
}
