//! `GET /api/tags` (the models an Ollama client can use: generation and embedding models,
//! plus `auto`), `GET /api/ps` (the loaded ones, with `size_vram` and `expires_at`) and
//! `POST /api/show` (one model's details, `model_info` and `capabilities`).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::{DeviceKind, ModelStatus, StageKind};

use super::request::only;
use super::{OllamaBody, OllamaError, model_name, now_rfc3339, ollama_name};
use crate::http::AppState;
use crate::http::models::AUTO;
use crate::inference::ApiError;
use crate::validate::invalid;

fn stage(m: &ModelStatus) -> StageKind {
    StageKind::try_from(m.stage).unwrap_or(StageKind::Unspecified)
}

/// Models an Ollama route can run (the router's classifier is not one).
fn usable(m: &ModelStatus) -> bool {
    matches!(stage(m), StageKind::Generate | StageKind::Embed)
}

/// The pseudo-model `auto`, as a generation model.
fn auto_status() -> ModelStatus {
    ModelStatus {
        name: AUTO.into(),
        stage: StageKind::Generate as i32,
        tier: "auto".into(),
        format: "switchyard-router".into(),
        info: [(
            "description".to_string(),
            "the router model picks the tier (fast, code, heavy) per request".to_string(),
        )]
        .into_iter()
        .collect(),
        ..Default::default()
    }
}

/// The registered models an Ollama client sees, `auto` last.
async fn listed(st: &AppState) -> Vec<ModelStatus> {
    let mut models: Vec<ModelStatus> = st.inf.list_models().await;
    models.retain(usable);
    if !models.iter().any(|m| m.name == AUTO) {
        models.push(auto_status());
    }
    models
}

fn info<'a>(m: &'a ModelStatus, key: &str) -> &'a str {
    m.info.get(key).map(String::as_str).unwrap_or("")
}

/// Ollama's `details`, from the registry's `info` (family, parameter_size, quantization).
fn details(m: &ModelStatus) -> Value {
    let family = info(m, "family");
    json!({
        "parent_model": "",
        "format": m.format,
        "family": family,
        "families": if family.is_empty() { json!(null) } else { json!([family]) },
        "parameter_size": info(m, "parameter_size"),
        "quantization_level": info(m, "quantization"),
    })
}

fn digest(m: &ModelStatus) -> &str {
    &m.sha256
}

/// One `/api/tags` entry. `size` is the registry's resident-memory estimate.
fn tag(m: &ModelStatus, modified_at: &str) -> Value {
    json!({
        "name": ollama_name(&m.name),
        "model": ollama_name(&m.name),
        "modified_at": modified_at,
        "size": m.memory_bytes,
        "digest": digest(m),
        "details": details(m),
    })
}

fn modified_at(st: &AppState) -> String {
    jiff::Timestamp::from_second(st.started as i64)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now_rfc3339())
}

pub(crate) async fn tags(State(st): State<AppState>) -> Json<Value> {
    let at = modified_at(&st);
    let models: Vec<Value> = listed(&st).await.iter().map(|m| tag(m, &at)).collect();
    Json(json!({"models": models}))
}

/// RFC 3339 time `ms` milliseconds from now; -1 = never (Ollama's far-future time).
fn expires_at(ms: i64) -> String {
    let now = jiff::Timestamp::now();
    let d = if ms < 0 {
        jiff::SignedDuration::from_nanos(i64::MAX)
    } else {
        jiff::SignedDuration::from_millis(ms)
    };
    now.checked_add(d)
        .unwrap_or(jiff::Timestamp::MAX)
        .to_string()
}

pub(crate) async fn ps(State(st): State<AppState>) -> Json<Value> {
    let models: Vec<Value> = listed(&st)
        .await
        .iter()
        .filter(|m| !m.loaded_on.is_empty())
        .map(|m| {
            let copies = m.loaded_on.len() as u64;
            let on_accelerators = m
                .loaded_on
                .iter()
                .filter(|p| {
                    DeviceKind::try_from(p.device_kind)
                        .is_ok_and(|k| !matches!(k, DeviceKind::Cpu | DeviceKind::Unspecified))
                })
                .count() as u64;
            let expires = if m.loaded_on.iter().any(|p| p.expires_in_ms < 0) {
                -1
            } else {
                m.loaded_on
                    .iter()
                    .map(|p| p.expires_in_ms)
                    .max()
                    .unwrap_or(0)
            };
            let loaded_on: Vec<Value> = m
                .loaded_on
                .iter()
                .map(|p| json!({"node": p.node, "device": p.device_id, "backend": p.backend}))
                .collect();
            json!({
                "name": ollama_name(&m.name),
                "model": ollama_name(&m.name),
                "size": m.memory_bytes * copies,
                "digest": digest(m),
                "details": details(m),
                "expires_at": expires_at(expires),
                "size_vram": m.memory_bytes * on_accelerators,
                "context_length": m.context_tokens,
                "switchyard": {"loaded_on": loaded_on},
            })
        })
        .collect();
    Json(json!({"models": models}))
}

pub(crate) async fn show(
    State(st): State<AppState>,
    OllamaBody(body): OllamaBody,
) -> Result<Json<Value>, OllamaError> {
    only(&body, "", &["model", "name", "verbose"])?;
    if crate::http::fields::opt_bool(&body, "verbose")? == Some(true) {
        return Err(invalid(
            "verbose",
            "verbose (tokenizer arrays in model_info) is not available: Switchyard's models are ONNX graphs, not GGUF files",
        )
        .into());
    }
    let requested = match crate::http::fields::opt_string(&body, "model")? {
        Some(m) => m,
        None => crate::http::fields::req_string(&body, "name")
            .map_err(|_| invalid("model", "model is required"))?,
    };
    let name = model_name(&requested);
    let models = listed(&st).await;
    let Some(m) = models.iter().find(|m| m.name == name) else {
        return Err(ApiError::new(
            ErrorClass::NotFound,
            format!("model '{requested}' not found"),
        )
        .into());
    };
    let family = info(m, "family");
    let arch = if family.is_empty() { "unknown" } else { family };
    let mut model_info = json!({
        "general.architecture": arch,
        "general.basename": info(m, "base"),
        "general.license": info(m, "license"),
    });
    if m.context_tokens > 0 {
        model_info[format!("{arch}.context_length")] = json!(m.context_tokens);
    }
    if m.embedding_dim > 0 {
        model_info[format!("{arch}.embedding_length")] = json!(m.embedding_dim);
    }
    let capabilities = match stage(m) {
        StageKind::Embed => json!(["embedding"]),
        _ => json!(["completion"]),
    };
    Ok(Json(json!({
        "modelfile": format!("# Switchyard model {} ({})\nFROM {}\n", m.name, m.format, m.name),
        "parameters": "",
        "template": "",
        "license": info(m, "license"),
        "details": details(m),
        "model_info": model_info,
        "capabilities": capabilities,
        "modified_at": modified_at(&st),
        "switchyard": crate::http::models::model_json(m, st.started)["switchyard"].clone(),
    })))
}
