//! The web console: static pages embedded in the binary (`assets/`, plain HTML, CSS and
//! JavaScript, no build step) at `/` and `/ui/*`, and the two JSON views only it needs,
//! `/v1/console/cluster` and `/v1/console/requests`, behind the API's bearer tokens like
//! every other `/v1` route. Everything else the console shows comes from the client API.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get};
use serde_json::{Value, json};
use switchyard_proto::v1::{Device, DeviceHealth, DeviceKind, NodeState, NodeStatus, TopsSource};

use super::{AppState, trace};
use crate::console::{ConsoleSource, RequestRecord};

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The pages (open: they hold no data; the data routes ask for the token).
pub(super) fn pages() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/ui/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/ui/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
}

/// The console's data routes (mounted under the token check).
pub(super) fn data() -> Router<AppState> {
    Router::new()
        .route("/v1/console/cluster", get(cluster))
        .route("/v1/console/requests", get(requests))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
        ],
        body,
    )
        .into_response()
}

fn source(st: &AppState) -> &dyn ConsoleSource {
    st.console
        .as_deref()
        .expect("data routes are mounted with a console source")
}

async fn cluster(State(st): State<AppState>) -> Json<Value> {
    let console = source(&st);
    let resident = console.resident();
    let nodes: Vec<Value> = console
        .nodes()
        .iter()
        .map(|n| node_json(n, &resident))
        .collect();
    Json(json!({ "object": "switchyard.cluster", "nodes": nodes }))
}

fn node_json(n: &NodeStatus, resident: &[(String, switchyard_proto::v1::ResidentModel)]) -> Value {
    let info = n.info.clone().unwrap_or_default();
    let state = NodeState::try_from(n.state)
        .unwrap_or(NodeState::Unspecified)
        .short_name();
    let devices: Vec<Value> = info
        .devices
        .iter()
        .map(|d| {
            let models: Vec<&str> = resident
                .iter()
                .filter(|(node, r)| *node == info.node_name && r.device_id == d.id)
                .map(|(_, r)| r.model.as_str())
                .collect();
            device_json(d, &models)
        })
        .collect();
    json!({
        "name": info.node_name, "id": n.node_id, "state": state,
        "heartbeat_age_ms": n.last_heartbeat_age_ms, "version": info.agent_version,
        "devices": devices,
    })
}

fn device_json(d: &Device, resident: &[&str]) -> Value {
    let t = d.telemetry.clone().unwrap_or_default();
    let tops = d.measured_tops.as_ref().or(d.tops.as_ref());
    let health = DeviceHealth::try_from(d.health).unwrap_or(DeviceHealth::Unspecified);
    json!({
        "id": d.id,
        "kind": DeviceKind::try_from(d.kind).unwrap_or(DeviceKind::Unspecified).short_name(),
        "vendor": d.vendor, "model": d.model,
        "memory_total_bytes": d.memory_total_bytes, "memory_free_bytes": d.memory_free_bytes,
        "utilization_ratio": t.utilization_ratio, "temperature_celsius": t.temperature_celsius,
        "power_watts": t.power_watts,
        "tops": tops.map_or(0.0, |t| t.int8_tops),
        "tops_source": tops.map_or("unknown", |t| TopsSource::try_from(t.source).unwrap_or(TopsSource::Unknown).short_name()),
        "healthy": health == DeviceHealth::Healthy, "health_reason": d.health_reason,
        "resident": resident,
        "unusable": d.backends.iter().filter(|b| !b.usable).map(|b| format!("{}: {}", b.backend, b.reason)).collect::<Vec<_>>(),
        "simulated": d.simulated,
    })
}

async fn requests(State(st): State<AppState>) -> Json<Value> {
    let list: Vec<Value> = source(&st)
        .recent_requests()
        .iter()
        .map(request_json)
        .collect();
    Json(json!({ "object": "switchyard.requests", "requests": list }))
}

fn request_json(r: &RequestRecord) -> Value {
    json!({
        "id": r.id, "started_unix_ms": r.started_unix_ms, "route": r.route.as_str(),
        "model": r.model, "tier": r.tier, "ok": r.ok, "error": r.error,
        "duration_ms": r.duration_ms, "completion_tokens": r.completion_tokens,
        "tokens_per_second": r.tokens_per_second(),
        "trace": r.trace.iter().map(trace::json).collect::<Vec<_>>(),
    })
}
