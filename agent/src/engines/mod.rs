//! Generation engines: the `llama-server` processes this agent supervises itself (one per
//! model and device, pinned to that device: [`llama_cpp`]), and engines that already run,
//! attached by URL (`[[agent.endpoints]]`): Ollama, or any OpenAI-compatible server (vLLM,
//! LM Studio, llama-server, another Switchyard), which Switchyard does not start or stop.
//! Each attached one is a pseudo-device of this node (id
//! `endpoint:<name>`, backend = its kind) that serves exactly the generation models it lists;
//! the agent polls it every second (its model list is its health check), reports it in
//! heartbeats, and proxies generation streams to it. Placement, breakers, retries, fallback
//! and metrics then treat it like any other (node, device, backend) target.

mod endpoint;
mod llama_cpp;
mod ollama;
mod openai;
mod pdeathsig;
mod proxy;

use std::sync::Arc;
use std::time::Duration;

use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::{Device, DeviceTelemetry, ResidentModel};
use tokio::sync::watch;
use tracing::{Instrument, info_span};

pub(crate) use proxy::{Done, LineReader, Sink, max_tokens};

pub use endpoint::{Endpoint, EndpointConfig, EngineKind, EngineModel};
pub use llama_cpp::{LlamaCpp, LlamaCppSettings, advertise, locate};

/// How often every endpoint is polled (model list = health check).
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Longest one poll request may take before the endpoint counts as down.
pub const POLL_TIMEOUT: Duration = Duration::from_millis(900);

/// A failure talking to an attached engine, classed like every other failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct EngineError {
    /// The class (fixes the gRPC status, and so the controller's retry decision).
    pub class: ErrorClass,
    /// What went wrong, naming the endpoint.
    pub message: String,
}

impl EngineError {
    /// An error of `class`.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        EngineError {
            class,
            message: message.into(),
        }
    }

    /// The class of an HTTP status an engine answered with: its own 4xx are the request's
    /// fault (400 → InvalidArgument, 404 → NotFound, 429 → ResourceExhausted); a refused
    /// token or a 5xx makes this target unusable (Unavailable: retried elsewhere).
    pub fn from_http(status: u16, message: impl Into<String>) -> Self {
        let class = match status {
            400 | 422 => ErrorClass::InvalidArgument,
            404 => ErrorClass::NotFound,
            408 | 504 => ErrorClass::DeadlineExceeded,
            429 => ErrorClass::ResourceExhausted,
            _ => ErrorClass::Unavailable,
        };
        EngineError::new(class, message)
    }

    /// As a gRPC status.
    pub fn to_status(&self) -> tonic::Status {
        self.class.status(self.message.clone())
    }
}

/// Every attached endpoint of this agent.
#[derive(Debug, Default)]
pub struct Engines {
    endpoints: Vec<Arc<Endpoint>>,
}

impl Engines {
    /// The endpoints of `configs` (checked by [`crate::AgentSettings::validate`]); all start
    /// as down until their first poll answers.
    pub fn new(configs: &[EndpointConfig]) -> Result<Self, String> {
        let endpoints = configs
            .iter()
            .map(|c| Endpoint::new(c.clone()).map(Arc::new))
            .collect::<Result<_, _>>()?;
        Ok(Engines { endpoints })
    }

    /// True when nothing is attached.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The endpoint behind a pseudo-device id.
    pub fn get(&self, device_id: &str) -> Option<&Arc<Endpoint>> {
        self.endpoints.iter().find(|e| e.device_id() == device_id)
    }

    /// The pseudo-devices, as inventory.
    pub fn devices(&self) -> Vec<Device> {
        self.endpoints.iter().map(|e| e.device()).collect()
    }

    /// Their health, as telemetry.
    pub fn telemetry(&self) -> Vec<DeviceTelemetry> {
        self.endpoints.iter().map(|e| e.telemetry()).collect()
    }

    /// The models they report loaded.
    pub fn resident(&self) -> Vec<ResidentModel> {
        self.endpoints.iter().flat_map(|e| e.resident()).collect()
    }

    /// Polls every endpoint each [`POLL_INTERVAL`] until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        if self.endpoints.is_empty() {
            return;
        }
        let mut ticker = tokio::time::interval(POLL_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            let polls = self.endpoints.iter().map(|e| {
                let span = info_span!("endpoint", name = %e.config().name);
                e.poll().instrument(span)
            });
            futures::future::join_all(polls).await;
        }
    }
}

#[cfg(test)]
mod tests;
