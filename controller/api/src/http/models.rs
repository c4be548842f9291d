//! `GET /v1/models`: every registered model (OpenAI list shape) with Switchyard's stage, tier
//! and placements, plus the pseudo-model `auto`.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use switchyard_proto::v1::{ModelStatus, StageKind};

use super::AppState;

/// The pseudo-model that lets the router pick the tier.
pub const AUTO: &str = "auto";

/// One `/v1/models` entry (also Switchyard's extension object of `/api/show`).
pub(crate) fn model_json(m: &ModelStatus, created: u64) -> Value {
    let loaded_on: Vec<Value> = m
        .loaded_on
        .iter()
        .map(|p| {
            let mut v = json!({"node": p.node, "device": p.device_id, "backend": p.backend});
            if !p.layout.is_empty() {
                v["layout"] = json!(p.layout);
            }
            v
        })
        .collect();
    json!({
        "id": m.name,
        "object": "model",
        "created": created,
        "owned_by": "switchyard",
        "switchyard": {
            "stage": StageKind::try_from(m.stage).unwrap_or(StageKind::Unspecified).short_name(),
            "tier": m.tier,
            "memory_bytes": m.memory_bytes,
            "loaded_on": loaded_on,
        }
    })
}

/// The `/v1/models` body for `models`.
pub(crate) fn list_json(models: &[ModelStatus], created: u64) -> Value {
    let mut data: Vec<Value> = models.iter().map(|m| model_json(m, created)).collect();
    if !models.iter().any(|m| m.name == AUTO) {
        data.push(json!({
            "id": AUTO,
            "object": "model",
            "created": created,
            "owned_by": "switchyard",
            "switchyard": {
                "stage": "generate",
                "tier": "auto",
                "memory_bytes": 0,
                "loaded_on": [],
                "description": "the router model picks the tier (fast, code, heavy) per request",
            }
        }));
    }
    json!({"object": "list", "data": data})
}

pub(crate) async fn list(State(st): State<AppState>) -> Json<Value> {
    let models = st.inf.list_models().await;
    Json(list_json(&models, st.started))
}
