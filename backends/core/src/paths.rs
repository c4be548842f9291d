//! Where Switchyard keeps prepared models and finds runtime libraries.

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

/// Finds a shared library: `env_var` if set, else the first file in
/// `<cache>/venv/lib/python3*/site-packages/<subdir>` whose name starts with `prefix`.
pub fn find_library(env_var: &str, subdir: &str, prefix: &str) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(env_var).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{env_var}={} does not exist", p.display()))
        };
    }
    let lib = cache_dir().join("venv/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|entries| {
        entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
            .find_map(|e| first_with_prefix(&e.path().join("site-packages").join(subdir), prefix))
    });
    found.ok_or_else(|| {
        format!(
            "{prefix}* not found (set {env_var}, or run scripts/setup.sh to install it under {})",
            lib.display()
        )
    })
}

fn first_with_prefix(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let mut hits: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    hits.sort();
    hits.pop()
}

/// The ONNX Runtime shared library (`SWITCHYARD_ORT_LIB` or the venv's onnxruntime wheel).
pub fn find_ort_library() -> Result<PathBuf, String> {
    find_library(
        "SWITCHYARD_ORT_LIB",
        "onnxruntime/capi",
        "libonnxruntime.so.1",
    )
}

/// The OpenVINO C library (`SWITCHYARD_OPENVINO_LIB` or the venv's openvino wheel).
pub fn find_openvino_library() -> Result<PathBuf, String> {
    find_library(
        "SWITCHYARD_OPENVINO_LIB",
        "openvino/libs",
        "libopenvino_c.so",
    )
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
