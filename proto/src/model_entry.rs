//! Wire conversion of an added model: [`AddedModel`] (what the controller keeps and the
//! registry parser checks) ↔ [`v1::ModelEntry`]. The one place an added model crosses the
//! wire, in either direction (CLI → controller, controller → agents).

use switchyard_backend_core::registry::added::{AddedEngine, AddedModel};

use crate::v1;

impl From<&AddedModel> for v1::ModelEntry {
    fn from(m: &AddedModel) -> Self {
        v1::ModelEntry {
            name: m.name.clone(),
            tier: m.tier.clone().unwrap_or_default(),
            max_input_tokens: m.max_input_tokens,
            context_tokens: m.context_tokens,
            sha256: m.sha256.clone(),
            memory_bytes: m.memory_bytes,
            engine_kind: m.engine.kind.clone(),
            gguf_path: m.engine.gguf.display().to_string(),
            parallel: m.engine.parallel,
            info: m.info.clone().into_iter().collect(),
        }
    }
}

/// The added model a peer sent, with the first missing field named. Whether its values make
/// sense is the registry parser's to say ([`switchyard_backend_core::ModelRegistry::with_added`]).
pub fn entry_from_wire(e: v1::ModelEntry) -> Result<AddedModel, String> {
    let required = [
        ("name", e.name.is_empty()),
        ("engine_kind", e.engine_kind.is_empty()),
        ("gguf_path", e.gguf_path.is_empty()),
        ("sha256", e.sha256.is_empty()),
    ];
    if let Some((field, _)) = required.iter().find(|(_, missing)| *missing) {
        return Err(format!("model entry: {field} is required"));
    }
    Ok(AddedModel {
        name: e.name,
        stage: "generate".into(),
        tier: Some(e.tier).filter(|t| !t.is_empty()),
        max_input_tokens: e.max_input_tokens,
        context_tokens: e.context_tokens,
        sha256: e.sha256,
        memory_bytes: e.memory_bytes,
        engine: AddedEngine {
            kind: e.engine_kind,
            gguf: e.gguf_path.into(),
            parallel: e.parallel,
        },
        info: e.info.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smol() -> AddedModel {
        AddedModel {
            name: "smol".into(),
            stage: "generate".into(),
            tier: Some("code".into()),
            max_input_tokens: 1536,
            context_tokens: 2048,
            sha256: "ab".repeat(32),
            memory_bytes: 123_456_789,
            engine: AddedEngine {
                kind: "llama_cpp".into(),
                gguf: "/models/smol.gguf".into(),
                parallel: 2,
            },
            info: [("quantization".to_string(), "Q4_1".to_string())].into(),
        }
    }

    #[test]
    fn an_added_model_survives_the_wire_unchanged() {
        let m = smol();
        assert_eq!(entry_from_wire(v1::ModelEntry::from(&m)).unwrap(), m);
        let untiered = AddedModel { tier: None, ..m };
        assert_eq!(
            entry_from_wire(v1::ModelEntry::from(&untiered)).unwrap(),
            untiered
        );
    }

    #[test]
    fn an_entry_without_a_required_field_is_refused_naming_it() {
        let mut e = v1::ModelEntry::from(&smol());
        e.gguf_path.clear();
        assert_eq!(
            entry_from_wire(e).unwrap_err(),
            "model entry: gguf_path is required"
        );
        assert!(
            entry_from_wire(v1::ModelEntry::default())
                .unwrap_err()
                .contains("name is required")
        );
    }
}
