//! The Ollama-compatible API under `/api`: an app written against Ollama works against
//! Switchyard by changing only the host. Thin over [`crate::Inference`] like the OpenAI
//! routes, with the same validation (`crate::validate`) and error table, but in Ollama's
//! shapes: errors are `{"error": "..."}`, generation streams NDJSON (one JSON object per
//! line, the last with `"done": true`) unless `"stream": false`, durations are nanoseconds.
//!
//! Fields Switchyard cannot act on (`format`, `tools`, `images`, `raw`, `template`,
//! `context`, options such as `mirostat` or `num_ctx`...) are refused with 400 naming them,
//! never ignored.

mod embed;
mod generate;
mod models;
mod request;
mod tools;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, OriginalUri, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::AppState;
use crate::inference::ApiError;

/// The version `/api/version` reports: Ollama clients check it against their minimum, so it
/// is the Ollama API level these routes follow, not Switchyard's own version.
pub const OLLAMA_API_VERSION: &str = "0.6.3";

/// An error in Ollama's shape `{"error": "..."}`, with the status from the one table.
#[derive(Debug, Clone)]
pub struct OllamaError {
    /// HTTP status.
    pub status: StatusCode,
    /// The message.
    pub message: String,
}

impl OllamaError {
    /// An error with an explicit status (404 route, 405, 413).
    pub fn with_status(status: StatusCode, message: impl Into<String>) -> Self {
        OllamaError {
            status,
            message: message.into(),
        }
    }
}

impl From<ApiError> for OllamaError {
    fn from(e: ApiError) -> Self {
        OllamaError {
            status: StatusCode::from_u16(e.class.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message: e.message,
        }
    }
}

impl IntoResponse for OllamaError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), message = %self.message, "Ollama API request failed");
        }
        (self.status, axum::Json(json!({"error": self.message}))).into_response()
    }
}

/// A JSON object body. Like Ollama, any content type is accepted (`curl -d` sends
/// `application/x-www-form-urlencoded`).
pub struct OllamaBody(pub Map<String, Value>);

impl FromRequest<AppState> for OllamaBody {
    type Rejection = OllamaError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                OllamaError::with_status(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the request body is over the limit max_body_bytes ({} bytes)",
                        state.cfg.max_body_bytes
                    ),
                )
            } else {
                OllamaError::with_status(r.status(), r.body_text())
            }
        })?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(OllamaBody(map)),
            Ok(other) => Err(OllamaError::with_status(
                StatusCode::BAD_REQUEST,
                format!(
                    "the request body must be a JSON object, got {}",
                    super::fields::type_name(&other)
                ),
            )),
            Err(e) => Err(OllamaError::with_status(
                StatusCode::BAD_REQUEST,
                format!("the request body is not valid JSON: {e}"),
            )),
        }
    }
}

/// The registry name of an Ollama model name: `name` and `name:latest` are the same model.
pub fn model_name(requested: &str) -> &str {
    requested.strip_suffix(":latest").unwrap_or(requested)
}

/// The Ollama name of a registry model (`name:latest`).
pub fn ollama_name(model: &str) -> String {
    if model.contains(':') {
        model.to_string()
    } else {
        format!("{model}:latest")
    }
}

/// The time now as RFC 3339 (`created_at`, `modified_at`).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

/// The routes, to be nested under `/api`. `/api/version` is open; the others need a token
/// when tokens are configured.
pub(crate) fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/tags", get(models::tags))
        .route("/ps", get(models::ps))
        .route("/show", post(models::show))
        .route("/chat", post(generate::chat))
        .route("/generate", post(generate::generate))
        .route("/embed", post(embed::embed))
        .route("/embeddings", post(embed::embeddings))
        .route_layer(axum::middleware::from_fn_with_state(state, require_token))
        .route("/version", get(version))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn require_token(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    match super::auth::check(&st, &req) {
        Ok(scope) => {
            req.extensions_mut().insert(scope);
            next.run(req).await
        }
        Err(e) => OllamaError::from(e).into_response(),
    }
}

async fn version() -> impl IntoResponse {
    axum::Json(json!({"version": OLLAMA_API_VERSION}))
}

async fn not_found(OriginalUri(uri): OriginalUri) -> OllamaError {
    OllamaError::with_status(
        StatusCode::NOT_FOUND,
        format!(
            "unknown URL {} (Switchyard serves /api/version, tags, ps, show, chat, generate, embed, embeddings)",
            uri.path()
        ),
    )
}

async fn method_not_allowed(
    method: axum::http::Method,
    OriginalUri(uri): OriginalUri,
) -> OllamaError {
    OllamaError::with_status(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} is not allowed on {}", uri.path()),
    )
}

#[cfg(test)]
mod tests;
