//! The runner's side of engine models: which entries are served by a supervised engine
//! process instead of a backend worker, and the supervisor that runs them.

use std::sync::Arc;

use switchyard_backend_core::ModelSpec;

use super::StageRunner;
use crate::engines::LlamaCpp;

impl StageRunner {
    /// Hands engine models to `llama_cpp` (once; done by [`crate::start`]).
    pub fn attach_llama_cpp(&self, llama_cpp: Arc<LlamaCpp>) {
        let _ = self.llama_cpp.set(llama_cpp);
    }

    /// The engine supervisor, once attached.
    pub fn llama_cpp(&self) -> Option<&Arc<LlamaCpp>> {
        self.llama_cpp.get()
    }

    /// The engine supervisor, with the entry of `model` when it is an engine model.
    pub fn engine_model(&self, model: &str) -> Option<(&Arc<LlamaCpp>, &ModelSpec)> {
        let spec = self.registry.get(model).filter(|s| s.engine.is_some())?;
        Some((self.llama_cpp.get()?, spec))
    }
}
