//! The HTTP API (axum): OpenAI-compatible under `/v1`, Ollama-compatible under `/api`.

pub(crate) mod auth;
pub(crate) use auth::bearer;
mod chat;
mod console;
mod documents;
mod embeddings;
pub mod error;
mod extensions;
mod extract;
mod fields;
mod models;
pub mod ollama;
mod trace;

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use switchyard_proto::errors::ErrorClass;
use tower_http::catch_panic::CatchPanicLayer;

use crate::config::ApiConfig;
use crate::inference::{ApiError, Inference};
use error::HttpError;

/// Shared state of every handler.
#[derive(Clone)]
pub(crate) struct AppState {
    pub inf: Arc<dyn Inference>,
    pub cfg: Arc<ApiConfig>,
    /// Who may call, for what.
    pub creds: Arc<crate::credentials::Credentials>,
    /// Unix seconds when the router was built (`created` of `/v1/models`).
    pub started: u64,
    /// What the web console reads beyond the client API (`None`: no console).
    pub console: Option<Arc<dyn crate::console::ConsoleSource>>,
}

impl AppState {
    /// The deadline of a request starting now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.cfg.request_timeout()
    }

    /// The error for a request that ran past its deadline.
    pub fn timeout_error(&self) -> ApiError {
        ApiError::new(
            ErrorClass::DeadlineExceeded,
            format!(
                "the request ran past its deadline (request_timeout {} ms)",
                self.cfg.request_timeout_ms
            ),
        )
    }

    /// Runs `fut` until `deadline` (the trait gives up by itself; this is the backstop).
    pub async fn until<T>(
        &self,
        deadline: Instant,
        fut: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        match tokio::time::timeout_at(deadline.into(), fut).await {
            Ok(r) => r,
            Err(_) => Err(self.timeout_error()),
        }
    }
}

/// Unix seconds now.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The HTTP API over `inf`: OpenAI's `/v1/models`, `/v1/embeddings`,
/// `/v1/chat/completions`, `/v1/completions`, Switchyard's `/v1/documents` and
/// `/v1/pipeline`, Ollama's `/api/*` ([`ollama`]) — bearer auth when `cfg.tokens` is not
/// empty — and the open `/health`, `/ready` and `/api/version`.
pub fn http_router(inf: Arc<dyn Inference>, cfg: ApiConfig) -> Router {
    http_router_with_console(inf, cfg, None)
}

/// [`http_router`] with the web console at `/` (pages) and `/v1/console/*` (its data, behind
/// the same tokens) when `console` is given.
pub fn http_router_with_console(
    inf: Arc<dyn Inference>,
    cfg: ApiConfig,
    console: Option<Arc<dyn crate::console::ConsoleSource>>,
) -> Router {
    let max_body = cfg.max_body_bytes;
    let with_console = console.is_some();
    let state = AppState {
        inf,
        creds: Arc::new(cfg.credentials()),
        cfg: Arc::new(cfg),
        started: unix_now(),
        console,
    };
    let mut v1 = Router::new()
        .route("/v1/models", get(models::list))
        .route("/v1/embeddings", post(embeddings::create))
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/completions", post(chat::completions))
        .route(
            "/v1/documents",
            post(documents::create)
                .get(documents::list)
                .delete(documents::delete_collection),
        )
        .route("/v1/documents/search", post(documents::search))
        .route(
            "/v1/documents/{id}",
            get(documents::get).delete(documents::delete),
        )
        .route("/v1/pipeline", post(extensions::pipeline));
    let mut pages = Router::new();
    if with_console {
        v1 = v1.merge(console::data());
        pages = console::pages();
    }
    let v1 = v1.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::require_token,
    ));
    Router::new()
        .merge(v1)
        .merge(pages)
        .nest("/api", ollama::router(state.clone()))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

async fn health() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

async fn ready(State(st): State<AppState>) -> Response {
    if st.inf.ready() {
        axum::Json(json!({"status": "ready"})).into_response()
    } else {
        HttpError::from(ApiError::new(
            ErrorClass::Unavailable,
            "not ready: no node is ready to serve",
        ))
        .into_response()
    }
}

async fn not_found(uri: axum::http::Uri) -> HttpError {
    HttpError::with_status(
        StatusCode::NOT_FOUND,
        "unknown_url",
        format!("unknown URL {}", uri.path()),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> HttpError {
    HttpError::with_status(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("method {method} is not allowed on {}", uri.path()),
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("HTTP handler panicked");
    HttpError::from(ApiError::new(
        ErrorClass::Internal,
        "internal error while serving the request",
    ))
    .into_response()
}

#[cfg(test)]
mod tests;
