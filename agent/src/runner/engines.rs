//! The runner's side of engine models: which entries are served by a supervised engine
//! process instead of a backend worker, and the supervisor that runs them.

use std::path::Path;
use std::sync::Arc;

use switchyard_backend_core::ModelSpec;
use switchyard_backend_core::registry::added::AddedModel;
use tracing::info;

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
    pub fn engine_model(&self, model: &str) -> Option<(&Arc<LlamaCpp>, ModelSpec)> {
        let spec = self
            .registry()
            .get(model)
            .filter(|s| s.engine.is_some())
            .cloned()?;
        Some((self.llama_cpp.get()?, spec))
    }

    /// Replaces the cluster's added models with `added` (the controller's whole set): each
    /// joins the agent's own registry, checked by the same parser; an entry refused here is
    /// left out and named in the returned problems. Engines serving a model that left the set
    /// are stopped.
    pub async fn set_cluster_models(&self, added: &[AddedModel]) -> Vec<String> {
        let origin = Path::new("<the controller's model set>");
        let (next, problems) = match self.base.clone().with_added(added, origin) {
            Ok(r) => (r, Vec::new()),
            // One bad entry must not hide the others: add them one at a time.
            Err(_) => {
                let mut reg = self.base.clone();
                let mut problems = Vec::new();
                for m in added {
                    match reg.clone().with_added(std::slice::from_ref(m), origin) {
                        Ok(r) => reg = r,
                        Err(e) => problems.push(e.to_string()),
                    }
                }
                (reg, problems)
            }
        };
        let gone: Vec<String> = self
            .registry()
            .iter()
            .filter(|s| s.engine.is_some() && next.get(&s.name).is_none())
            .map(|s| s.name.clone())
            .collect();
        *self.registry.write().expect("registry") = Arc::new(next);
        if let Some(llama_cpp) = self.llama_cpp.get() {
            for r in llama_cpp.resident() {
                if gone.contains(&r.model) {
                    info!(model = %r.model, device = %r.device_id, "model left the cluster's set: stopping its engine");
                    llama_cpp.unload(&r.model, &r.device_id).await;
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use switchyard_backend_core::ModelRegistry;
    use switchyard_backend_core::registry::added::AddedEngine;

    use super::*;

    fn added(name: &str, parallel: u32) -> AddedModel {
        AddedModel {
            name: name.into(),
            stage: "generate".into(),
            tier: None,
            max_input_tokens: 1536,
            context_tokens: 2048,
            sha256: "ab".repeat(32),
            memory_bytes: 1 << 28,
            engine: AddedEngine {
                kind: "llama_cpp".into(),
                gguf: format!("/nowhere/{name}.gguf").into(),
                parallel,
            },
            info: Default::default(),
        }
    }

    #[tokio::test]
    async fn the_cluster_set_replaces_the_added_models_and_a_bad_entry_is_named_not_fatal() {
        let runner = StageRunner::new("n", ModelRegistry::default(), Vec::new(), 4);
        let problems = runner
            .set_cluster_models(&[added("good", 2), added("bad", 0)])
            .await;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("bad"), "{problems:?}");
        let registry = runner.registry();
        assert_eq!(registry.get("good").unwrap().memory_bytes, 1 << 28);
        assert!(registry.get("bad").is_none());
        assert!(
            registry.available().is_empty(),
            "kept, but not served where the file is missing"
        );

        assert!(runner.set_cluster_models(&[]).await.is_empty());
        assert!(
            runner.registry().get("good").is_none(),
            "removed with the set"
        );
    }
}
