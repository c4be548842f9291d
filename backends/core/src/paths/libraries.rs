//! Where the runtime libraries loaded at run time are looked for, in order:
//!
//! 1. the override variable (`SWITCHYARD_ORT_LIB`, `SWITCHYARD_OPENVINO_LIB`), if set;
//! 2. the cache that `scripts/setup.sh` fills: the venv's site-packages under
//!    `${XDG_CACHE_HOME:-~/.cache}/switchyard/venv` (then the system service's
//!    `/var/cache/switchyard/venv`);
//! 3. standard system paths: system-wide pip installs (`dist-packages`), `/usr/local/lib`,
//!    the multiarch directory, `/usr/lib64`, `/usr/lib`, and the library's own vendor
//!    directory (`/opt/intel/openvino*/runtime/lib/intel64`).
//!
//! A library found nowhere is one error naming what is missing, where it was looked for and
//! how to install it. No environment needs to be sourced to run the binary.

use std::path::{Path, PathBuf};

/// A shared library Switchyard loads at run time, and how to get it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeLibrary {
    /// What users call it (`ONNX Runtime`).
    pub name: &'static str,
    /// Variable that names the file directly and skips the search.
    pub env_var: &'static str,
    /// File name prefix (the wheels ship only versioned names, e.g. `libonnxruntime.so.1.32.0`).
    pub prefix: &'static str,
    /// Directory of the library inside a Python `site-packages` / `dist-packages`.
    pub python_dir: &'static str,
    /// The library's own install locations, relative to `/` (one `*` per component allowed).
    pub vendor_dirs: &'static [&'static str],
    /// The pip requirement that provides it.
    pub pip: &'static str,
}

/// ONNX Runtime (the PyPI `onnxruntime` wheel's `libonnxruntime.so.1.*`; ≥ 1.31 for api-31).
pub const ONNX_RUNTIME: RuntimeLibrary = RuntimeLibrary {
    name: "ONNX Runtime",
    env_var: "SWITCHYARD_ORT_LIB",
    prefix: "libonnxruntime.so.1",
    python_dir: "onnxruntime/capi",
    vendor_dirs: &["opt/onnxruntime/lib", "opt/onnxruntime*/lib"],
    pip: "onnxruntime==1.32.0",
};

/// OpenVINO's C API (`libopenvino_c.so.*` of the PyPI `openvino` wheel or an Intel archive;
/// ≥ 2025.1).
pub const OPENVINO: RuntimeLibrary = RuntimeLibrary {
    name: "OpenVINO",
    env_var: "SWITCHYARD_OPENVINO_LIB",
    prefix: "libopenvino_c.so",
    python_dir: "openvino/libs",
    vendor_dirs: &[
        "opt/intel/openvino/runtime/lib/intel64",
        "opt/intel/openvino*/runtime/lib/intel64",
    ],
    pip: "openvino==2026.4.1",
};

impl RuntimeLibrary {
    /// Finds the library: the override variable, else the first match in
    /// [`RuntimeLibrary::search_patterns`] under `/` with this process's cache directory.
    pub fn find(&self) -> Result<PathBuf, String> {
        if let Some(p) = std::env::var_os(self.env_var).filter(|v| !v.is_empty()) {
            let p = PathBuf::from(p);
            return if p.is_file() {
                Ok(p)
            } else {
                Err(format!(
                    "{} not found: {}={} does not exist (unset it to search the usual places)",
                    self.name,
                    self.env_var,
                    p.display()
                ))
            };
        }
        self.find_in(&super::cache_dir(), Path::new("/"))
    }

    /// The directories searched, in order, as patterns (`*` matches within one component):
    /// the cache's venv, the system service's venv, then system paths under `root`.
    pub fn search_patterns(&self, cache: &Path, root: &Path) -> Vec<PathBuf> {
        let site = |venv: PathBuf| {
            venv.join("lib/python3*/site-packages")
                .join(self.python_dir)
        };
        let mut dirs = vec![site(cache.join("venv"))];
        let service = root.join("var/cache/switchyard/venv");
        if service != cache.join("venv") {
            dirs.push(site(service));
        }
        let triplet = format!("{}-linux-gnu", std::env::consts::ARCH);
        let system = [
            format!("usr/local/lib/python3*/dist-packages/{}", self.python_dir),
            format!("usr/lib/python3/dist-packages/{}", self.python_dir),
            "usr/local/lib".to_string(),
            format!("usr/lib/{triplet}"),
            "usr/lib64".to_string(),
            "usr/lib".to_string(),
        ];
        dirs.extend(system.iter().map(|d| root.join(d)));
        dirs.extend(self.vendor_dirs.iter().map(|d| root.join(d)));
        dirs
    }

    /// Searches [`RuntimeLibrary::search_patterns`]; the error says what is missing, where
    /// it was looked for and how to install it.
    pub fn find_in(&self, cache: &Path, root: &Path) -> Result<PathBuf, String> {
        let patterns = self.search_patterns(cache, root);
        if let Some(found) = patterns
            .iter()
            .flat_map(|p| expand(p))
            .find_map(|dir| newest_with_prefix(&dir, self.prefix))
        {
            return Ok(found);
        }
        let looked: Vec<String> = patterns.iter().map(|p| p.display().to_string()).collect();
        Err(format!(
            "{name} not found ({prefix}*; looked in {looked}): install it with `bash scripts/setup.sh` (puts {pip} into {venv}), or `pip install {pip}` system-wide, or set {var} to the library file",
            name = self.name,
            prefix = self.prefix,
            looked = looked.join(", "),
            pip = self.pip,
            venv = cache.join("venv").display(),
            var = self.env_var,
        ))
    }
}

/// The existing directories a pattern names (`*` within a component), newest name first.
fn expand(pattern: &Path) -> Vec<PathBuf> {
    let mut out = vec![PathBuf::new()];
    for part in pattern.components() {
        let part = part.as_os_str().to_string_lossy();
        let Some((head, tail)) = part.split_once('*') else {
            out.iter_mut().for_each(|p| p.push(part.as_ref()));
            continue;
        };
        let mut next = Vec::new();
        for dir in &out {
            let mut hits: Vec<PathBuf> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.len() >= head.len() + tail.len() && n.starts_with(head) && n.ends_with(tail)
                })
                .map(|e| e.path())
                .collect();
            hits.sort();
            hits.reverse();
            next.extend(hits);
        }
        out = next;
    }
    out.into_iter().filter(|p| p.is_dir()).collect()
}

/// The file in `dir` whose name starts with `prefix` and sorts last (the newest version).
fn newest_with_prefix(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let mut hits: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    hits.sort();
    hits.pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"not really a library").unwrap();
    }

    #[test]
    fn the_setup_cache_wins_over_system_paths() {
        let cache = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let venv_lib = cache
            .path()
            .join("venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.32.0");
        let system_lib = root.path().join("usr/lib/libonnxruntime.so.1.20.0");
        touch(&venv_lib);
        touch(&system_lib);
        let found = ONNX_RUNTIME.find_in(cache.path(), root.path()).unwrap();
        assert_eq!(found, venv_lib);
        std::fs::remove_file(&venv_lib).unwrap();
        let found = ONNX_RUNTIME.find_in(cache.path(), root.path()).unwrap();
        assert_eq!(
            found, system_lib,
            "system paths are searched after the cache"
        );
    }

    #[test]
    fn vendor_and_multiarch_directories_are_searched_newest_first() {
        let cache = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let old = root
            .path()
            .join("opt/intel/openvino_2025.1/runtime/lib/intel64/libopenvino_c.so.2510");
        let new = root
            .path()
            .join("opt/intel/openvino_2026.4/runtime/lib/intel64/libopenvino_c.so.2640");
        touch(&old);
        touch(&new);
        assert_eq!(OPENVINO.find_in(cache.path(), root.path()).unwrap(), new);
        let triplet = format!("usr/lib/{}-linux-gnu", std::env::consts::ARCH);
        let multiarch = root.path().join(triplet).join("libopenvino_c.so.2541");
        touch(&multiarch);
        assert_eq!(
            OPENVINO.find_in(cache.path(), root.path()).unwrap(),
            multiarch,
            "standard library directories come before vendor ones"
        );
    }

    #[test]
    fn a_missing_library_is_one_error_naming_it_the_places_and_the_fix() {
        let cache = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let err = OPENVINO.find_in(cache.path(), root.path()).unwrap_err();
        assert!(
            err.starts_with("OpenVINO not found (libopenvino_c.so*"),
            "{err}"
        );
        assert!(err.contains("site-packages/openvino/libs"), "{err}");
        assert!(err.contains("usr/lib"), "{err}");
        assert!(err.contains("bash scripts/setup.sh"), "{err}");
        assert!(err.contains("pip install openvino=="), "{err}");
        assert!(err.contains("SWITCHYARD_OPENVINO_LIB"), "{err}");
        assert!(!err.contains('\n'));
    }
}
