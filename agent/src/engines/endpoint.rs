//! One attached endpoint: its configuration, what its last poll saw (health, models, which
//! are loaded), and how it looks to the controller (a pseudo-device).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use switchyard_proto::v1::{
    BackendSupport, Device, DeviceHealth, DeviceKind, DeviceTelemetry, ResidentModel,
};
use tracing::{info, warn};

use super::{EngineError, POLL_TIMEOUT, ollama, openai};

/// The protocol an endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    /// Ollama's API (`/api/tags`, `/api/ps`, `/api/show`, `/api/chat`).
    Ollama,
    /// The OpenAI API (`/v1/models`, `/v1/chat/completions`): vLLM, LM Studio,
    /// llama-server, …
    Openai,
}

impl EngineKind {
    /// The name used as the pseudo-device's backend id (`ollama`, `openai`).
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Ollama => "ollama",
            EngineKind::Openai => "openai",
        }
    }
}

/// One `[[agent.endpoints]]` entry.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Unique name on this node; the pseudo-device id is `endpoint:<name>`.
    pub name: String,
    /// The protocol it speaks.
    pub kind: EngineKind,
    /// Base URL, e.g. `http://10.0.0.7:11434` (Ollama) or `http://10.0.0.8:8000` (OpenAI).
    pub url: String,
    /// The kind of device it runs on (`cpu`, `nvidia_gpu`, `intel_gpu`, `intel_npu`), for
    /// placement preferences; default `cpu`.
    #[serde(default)]
    pub device: Option<String>,
    /// Bearer token sent to it; never logged.
    #[serde(default)]
    pub token: Option<String>,
}

impl std::fmt::Debug for EndpointConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("device", &self.device)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Device kinds an endpoint may say it runs on.
const KINDS: &[(&str, DeviceKind)] = &[
    ("cpu", DeviceKind::Cpu),
    ("nvidia_gpu", DeviceKind::NvidiaGpu),
    ("intel_gpu", DeviceKind::IntelGpu),
    ("intel_npu", DeviceKind::IntelNpu),
];

impl EndpointConfig {
    /// Checks the entry; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        let at = format!("agent.endpoints '{}'", self.name);
        if self.name.trim().is_empty() || self.name.contains(char::is_whitespace) {
            return Err("agent.endpoints: name must be non-empty, without spaces".into());
        }
        let url = self.url.trim_end_matches('/');
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!(
                "{at}: url must start with http:// (got '{}'; TLS to attached engines is not built in: reach them on the LAN or through a local proxy)",
                self.url
            )
        })?;
        if rest.is_empty() || rest.contains('/') && !rest.ends_with("/v1") {
            return Err(format!(
                "{at}: url must be http://HOST:PORT (got '{}')",
                self.url
            ));
        }
        self.device_kind()?;
        Ok(())
    }

    fn device_kind(&self) -> Result<DeviceKind, String> {
        let name = self.device.as_deref().unwrap_or("cpu");
        KINDS
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, kind)| *kind)
            .ok_or_else(|| {
                format!(
                    "agent.endpoints '{}': device must be one of {}, got '{name}'",
                    self.name,
                    KINDS.iter().map(|k| k.0).collect::<Vec<_>>().join(", ")
                )
            })
    }

    /// The base URL without a trailing `/` or `/v1`.
    pub fn base_url(&self) -> &str {
        let u = self.url.trim_end_matches('/');
        u.strip_suffix("/v1").unwrap_or(u)
    }
}

/// A generation model an endpoint serves.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EngineModel {
    /// The name clients use (Ollama's `:latest` dropped, like Switchyard's own names).
    pub name: String,
    /// The name the endpoint knows it by.
    pub remote: String,
    /// Bytes on disk (Ollama), 0 when unknown.
    pub size_bytes: u64,
    /// Loaded now (Ollama `/api/ps`).
    pub loaded: bool,
}

/// What the last poll saw.
#[derive(Debug, Default)]
struct Seen {
    healthy: bool,
    reason: String,
    models: Vec<EngineModel>,
    /// Ollama: whether a remote name can generate (from `/api/show`), cached.
    completion: HashMap<String, bool>,
}

fn health_of(seen: &Seen) -> DeviceHealth {
    if seen.healthy {
        DeviceHealth::Healthy
    } else {
        DeviceHealth::Unavailable
    }
}

/// One attached endpoint.
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    kind: DeviceKind,
    device_id: String,
    http: reqwest::Client,
    seen: Mutex<Seen>,
}

impl Endpoint {
    /// An endpoint for a checked `config`; down until polled.
    pub fn new(config: EndpointConfig) -> Result<Self, String> {
        config.validate()?;
        let http = reqwest::Client::builder()
            .connect_timeout(POLL_TIMEOUT)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| format!("agent.endpoints '{}': {e}", config.name))?;
        Ok(Endpoint {
            kind: config.device_kind()?,
            device_id: format!("endpoint:{}", config.name),
            config,
            http,
            seen: Mutex::new(Seen {
                reason: "not polled yet".into(),
                ..Default::default()
            }),
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// The pseudo-device id (`endpoint:<name>`).
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// A request to `path` with the bearer token, if any.
    pub(super) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self
            .http
            .request(method, format!("{}{path}", self.config.base_url()));
        match &self.config.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// The remote name of `model`, if the endpoint serves it.
    pub fn remote_name(&self, model: &str) -> Option<String> {
        let seen = self.seen.lock().expect("endpoint state");
        seen.models
            .iter()
            .find(|m| m.name == model)
            .map(|m| m.remote.clone())
    }

    /// The models of the last poll.
    pub fn models(&self) -> Vec<EngineModel> {
        self.seen.lock().expect("endpoint state").models.clone()
    }

    /// True when the last poll answered.
    pub fn healthy(&self) -> bool {
        self.seen.lock().expect("endpoint state").healthy
    }

    /// The pseudo-device.
    pub fn device(&self) -> Device {
        let seen = self.seen.lock().expect("endpoint state");
        let backend = self.config.kind.as_str().to_string();
        Device {
            id: self.device_id.clone(),
            kind: self.kind as i32,
            vendor: backend.clone(),
            model: self.config.base_url().to_string(),
            backends: vec![BackendSupport {
                backend: backend.clone(),
                usable: true,
                reason: String::new(),
                // The engine picks its own precision; nothing is promised for it.
                precisions: Vec::new(),
                engine_build: String::new(),
            }],
            health: health_of(&seen) as i32,
            health_reason: if seen.healthy {
                String::new()
            } else {
                seen.reason.clone()
            },
            attributes: BTreeMap::from([("url".to_string(), self.config.base_url().to_string())])
                .into_iter()
                .collect(),
            engine: backend,
            models: seen.models.iter().map(|m| m.name.clone()).collect(),
            ..Default::default()
        }
    }

    /// Its health as telemetry.
    pub fn telemetry(&self) -> DeviceTelemetry {
        let seen = self.seen.lock().expect("endpoint state");
        DeviceTelemetry {
            device_id: self.device_id.clone(),
            health: health_of(&seen) as i32,
            ..Default::default()
        }
    }

    /// The models it has loaded, as resident models it manages itself (reported pinned:
    /// Switchyard never unloads them).
    pub fn resident(&self) -> Vec<ResidentModel> {
        let seen = self.seen.lock().expect("endpoint state");
        if !seen.healthy {
            return Vec::new();
        }
        seen.models
            .iter()
            .filter(|m| m.loaded)
            .map(|m| ResidentModel {
                model: m.name.clone(),
                device_id: self.device_id.clone(),
                backend: self.config.kind.as_str().to_string(),
                memory_bytes: m.size_bytes,
                pinned: true,
                ..Default::default()
            })
            .collect()
    }

    /// Asks the endpoint for its models; its answer (or silence) is its health.
    pub async fn poll(&self) {
        let known = self.seen.lock().expect("endpoint state").completion.clone();
        let result = match self.config.kind {
            super::EngineKind::Ollama => ollama::list(self, &known).await,
            super::EngineKind::Openai => openai::list(self).await,
        };
        let mut seen = self.seen.lock().expect("endpoint state");
        match result {
            Ok((models, completion)) => {
                if !seen.healthy {
                    info!(models = models.len(), "endpoint answers");
                }
                seen.healthy = true;
                seen.reason.clear();
                seen.models = models;
                seen.completion.extend(completion);
            }
            Err(e) => {
                if seen.healthy || seen.reason != e.message {
                    warn!(error = %e.message, "endpoint down");
                }
                seen.healthy = false;
                seen.reason = e.message;
            }
        }
    }

    /// An error naming this endpoint.
    pub(super) fn error(&self, e: reqwest::Error) -> EngineError {
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "is unreachable"
        } else {
            "failed"
        };
        EngineError::new(
            switchyard_proto::errors::ErrorClass::Unavailable,
            format!(
                "endpoint {} ({}) {what}: {e}",
                self.config.name,
                self.config.base_url()
            ),
        )
    }

    /// The error for an HTTP error answer.
    pub(super) async fn refused(&self, resp: reqwest::Response) -> EngineError {
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("error").map(|e| match e {
                    serde_json::Value::String(s) => s.clone(),
                    other => other
                        .get("message")
                        .and_then(|m| m.as_str())
                        .unwrap_or_default()
                        .to_string(),
                })
            })
            .unwrap_or(body);
        EngineError::from_http(
            status,
            format!(
                "endpoint {} answered {status}: {}",
                self.config.name,
                detail.trim()
            ),
        )
    }

    /// GET `path` as JSON within the poll timeout.
    pub(super) async fn get_json(&self, path: &str) -> Result<serde_json::Value, EngineError> {
        self.send_json(self.request(reqwest::Method::GET, path))
            .await
    }

    /// Sends `req` and reads a JSON answer within the poll timeout.
    pub(super) async fn send_json(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<serde_json::Value, EngineError> {
        let resp = req
            .timeout(POLL_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        if !resp.status().is_success() {
            return Err(self.refused(resp).await);
        }
        resp.json().await.map_err(|e| self.error(e))
    }
}
