//! Where Switchyard keeps prepared models and finds runtime libraries ([`libraries`]).

mod libraries;

pub use libraries::{ONNX_RUNTIME, OPENVINO, RuntimeLibrary};

use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// The models directory the process was configured with (config file or `--models-dir`).
static MODELS_DIR: RwLock<Option<PathBuf>> = RwLock::new(None);

/// `${XDG_CACHE_HOME:-$HOME/.cache}/switchyard`.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    base.join("switchyard")
}

/// Makes [`models_dir`] return `dir` for the rest of the process, so that everything that
/// reads model files (registry, backend probe, calibration) agrees with the configuration.
pub fn set_models_dir(dir: &Path) {
    *MODELS_DIR.write().unwrap_or_else(|e| e.into_inner()) = Some(dir.to_path_buf());
}

/// The directory set by [`set_models_dir`], else `SWITCHYARD_MODELS_DIR`, else
/// `<cache>/models`.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = MODELS_DIR.read().unwrap_or_else(|e| e.into_inner()).clone() {
        return dir;
    }
    std::env::var_os("SWITCHYARD_MODELS_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("models"))
}

/// Threads per inference (`SWITCHYARD_THREADS`, default: all cores).
pub fn inference_threads() -> usize {
    std::env::var("SWITCHYARD_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}
