//! What a cold candidate costs before its first token: the last load time measured for the
//! model on each backend (from the traces agents return), shown by `switchyard explain`.

use std::collections::HashMap;
use std::sync::Mutex;

/// The last measured load time of each (model, backend).
#[derive(Debug, Default)]
pub struct ColdStarts {
    last_ms: Mutex<HashMap<(String, String), f64>>,
}

impl ColdStarts {
    /// Records a load of `model` on `backend` that took `ms` (a trace's `load_ms`; 0 = the
    /// model was resident, nothing to record).
    pub fn record(&self, model: &str, backend: &str, ms: f64) {
        if ms > 0.0 && ms.is_finite() {
            self.last_ms
                .lock()
                .expect("cold starts")
                .insert((model.to_string(), backend.to_string()), ms);
        }
    }

    /// How a candidate starts: "warm", or "cold start ≈ 2.8 s (last load)", or "cold start
    /// (not measured yet)"; engines say which, with the build the device's agent reported
    /// (`llama.cpp (cpu build), warm (process running)`).
    pub fn describe(&self, model: &str, backend: &str, build: Option<&str>, warm: bool) -> String {
        let engine = match (backend, build) {
            ("llama_cpp", Some(build)) => format!("llama.cpp ({build}), "),
            ("llama_cpp", None) => "llama.cpp engine, ".to_string(),
            _ => String::new(),
        };
        if warm {
            let running = if engine.is_empty() {
                ""
            } else {
                " (process running)"
            };
            return format!("{engine}warm{running}");
        }
        let last = self
            .last_ms
            .lock()
            .expect("cold starts")
            .get(&(model.to_string(), backend.to_string()))
            .copied();
        match last {
            Some(ms) => format!("{engine}cold start ≈ {:.1} s (last load)", ms / 1e3),
            None => format!("{engine}cold start (not measured yet)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cold_candidate_shows_its_last_measured_load() {
        let c = ColdStarts::default();
        assert_eq!(
            c.describe("smollm2-gguf", "llama_cpp", None, false),
            "llama.cpp engine, cold start (not measured yet)"
        );
        c.record("smollm2-gguf", "llama_cpp", 2_840.0);
        c.record("smollm2-gguf", "llama_cpp", 0.0);
        assert_eq!(
            c.describe("smollm2-gguf", "llama_cpp", Some("cpu build"), false),
            "llama.cpp (cpu build), cold start ≈ 2.8 s (last load)"
        );
        assert_eq!(
            c.describe("smollm2-gguf", "llama_cpp", Some("CUDA build"), true),
            "llama.cpp (CUDA build), warm (process running)"
        );
        assert_eq!(c.describe("minilm", "openvino", None, true), "warm");
        assert_eq!(
            c.describe("minilm", "openvino", None, false),
            "cold start (not measured yet)"
        );
    }
}
