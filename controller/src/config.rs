//! The controller's own sections of the configuration file — `[controller]`, `[routes]`,
//! `[api]`, `[scheduler]`, `[residency]`, `[retrieval]` — each a serde struct with defaults that refuses
//! unknown keys. The `switchyard` binary composes them (with the agent's section) into the
//! file it reads; [`ServerConfig`] is what [`crate::server::start`] runs with.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Controller settings (`[controller]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ControllerConfig {
    /// gRPC address (registry, cluster, inference).
    pub listen: SocketAddr,
    /// Agents on other hosts connect: `listen` must not be a loopback address.
    pub cluster: bool,
    /// HTTP address (OpenAI-compatible API, /health, /metrics).
    pub http_listen: SocketAddr,
    /// Heartbeat interval agents are told to use, milliseconds.
    pub heartbeat_interval_ms: u32,
    /// Heartbeats missed before a node is lost.
    pub missed_heartbeats: u32,
    /// Where the controller keeps its state (the document store, the cluster CA and join
    /// tokens under `pki/`), created on start.
    pub data_dir: PathBuf,
    /// Serve the control path (registry, cluster) and reach agents without TLS and without
    /// certificates: anyone who reaches the port can register a node. A warning is logged
    /// at every start.
    pub insecure: bool,
    /// Bearer tokens that let an operator without a cluster certificate (another host, a
    /// script) call the Registry and Cluster services (`status`, `nodes remove`, …) over
    /// TLS: `SWITCHYARD_ADMIN_TOKEN` on the client side. Empty = certificates only. Never
    /// logged.
    pub admin_tokens: AdminTokens,
}

/// The admin tokens, redacted in `Debug`.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct AdminTokens(pub Vec<String>);

impl std::fmt::Debug for AdminTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} redacted>", self.0.len())
    }
}

/// `${XDG_CACHE_HOME:-~/.cache}/switchyard/controller`, beside the prepared models.
pub fn default_data_dir() -> PathBuf {
    switchyard_backend_core::paths::cache_dir().join("controller")
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            listen: "127.0.0.1:50051".parse().expect("valid default"),
            cluster: false,
            http_listen: "127.0.0.1:8080".parse().expect("valid default"),
            heartbeat_interval_ms: 1000,
            missed_heartbeats: 3,
            data_dir: default_data_dir(),
            insecure: false,
            admin_tokens: AdminTokens::default(),
        }
    }
}

/// Scheduler settings (`[scheduler.policy]`, `[scheduler.retry]`, `[scheduler.breakers]`,
/// `[scheduler.latency]`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// Placement policy: pack or spread, memory headroom, device and backend preferences.
    pub policy: switchyard_scheduler::PlacementPolicy,
    /// Retries of failed stage calls: attempts and back-off delays.
    pub retry: switchyard_scheduler::RetryPolicy,
    /// Circuit-breaker thresholds per (node, device).
    pub breakers: switchyard_scheduler::BreakerConfig,
    /// Latency tracking and adaptive per-stage timeouts.
    pub latency: switchyard_scheduler::LatencyConfig,
}

/// Residency settings (`[residency]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ResidencyConfig {
    /// Unload a model that served nothing for this long, seconds.
    pub keep_alive_s: u64,
    /// Models kept loaded on at least one device at all times.
    pub pinned: Vec<String>,
    /// How often the reconcile loop runs, milliseconds.
    pub reconcile_interval_ms: u64,
}

impl Default for ResidencyConfig {
    fn default() -> Self {
        ResidencyConfig {
            keep_alive_s: 600,
            pinned: vec!["router".into()],
            reconcile_interval_ms: 1000,
        }
    }
}

/// Tier routes (`[routes]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Routes {
    /// Classifier that picks the tier.
    pub router: String,
    /// Embedding model used for retrieval.
    pub embed: String,
    /// Generate models of the `fast` tier (short, cheap answers), in fallback order.
    pub fast: Vec<String>,
    /// Generate models of the `code` tier (programming questions), in fallback order.
    pub code: Vec<String>,
    /// Generate models of the `heavy` tier (long or hard questions), in fallback order.
    pub heavy: Vec<String>,
    /// Tiers the user named (`[routes.tiers] sql = ["sqlcoder-7b"]`), for a router fitted on
    /// them (`switchyard router fit`): generate models per tier, in fallback order.
    pub tiers: BTreeMap<String, Vec<String>>,
    /// Where a tier goes when none of its models can be placed (`[routes.fallback] sql =
    /// ["code", "fast"]`); without an entry: the built-in order, then the other user tiers.
    pub fallback: BTreeMap<String, Vec<String>>,
    /// Tiers whose chat answers get context from the document store unless the request says
    /// otherwise (`retrieval = ["code"]`); empty by default (see the README's "Documents").
    pub retrieval: Vec<String>,
}

impl Routes {
    /// Every model the routes name.
    pub fn named(&self) -> impl Iterator<Item = &String> {
        [&self.router, &self.embed]
            .into_iter()
            .chain(&self.fast)
            .chain(&self.code)
            .chain(&self.heavy)
            .chain(self.tiers.values().flatten())
    }
}

impl Default for Routes {
    fn default() -> Self {
        Routes {
            router: "router".into(),
            embed: "minilm-l6-v2".into(),
            fast: vec!["smollm2-135m".into()],
            code: vec!["smollm2-135m-code".into()],
            heavy: vec!["smollm2-135m-heavy".into()],
            tiers: BTreeMap::new(),
            fallback: BTreeMap::new(),
            retrieval: Vec::new(),
        }
    }
}

/// Retrieval settings (`[retrieval]`): how documents are chunked and searched.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetrievalConfig {
    /// Tokens per chunk as the embedding model counts them, special tokens included; at most
    /// the model's `max_input_tokens` (the default), so nothing is truncated.
    pub chunk_tokens: Option<u32>,
    /// Tokens a chunk repeats from the end of the previous one (at most half a chunk).
    pub overlap_tokens: u32,
    /// Chunks retrieved per query when the request does not say.
    pub top_k: u32,
    /// Chunks scoring below this cosine similarity are not retrieved (requests may override).
    pub min_score: f32,
    /// Largest document accepted, bytes.
    pub max_document_bytes: u64,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        RetrievalConfig {
            chunk_tokens: None,
            overlap_tokens: 16,
            top_k: 3,
            min_score: 0.0,
            max_document_bytes: 2 * 1024 * 1024,
        }
    }
}

impl RetrievalConfig {
    /// Checks ranges; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.chunk_tokens == Some(0) {
            return Err("retrieval.chunk_tokens must be ≥ 1".into());
        }
        if self.top_k == 0 || self.top_k > 4096 {
            return Err(format!(
                "retrieval.top_k must be 1..=4096, got {}",
                self.top_k
            ));
        }
        if !self.min_score.is_finite() || !(-1.0..=1.0).contains(&self.min_score) {
            return Err(format!(
                "retrieval.min_score must be between -1 and 1, got {}",
                self.min_score
            ));
        }
        if self.max_document_bytes == 0 {
            return Err("retrieval.max_document_bytes must be ≥ 1".into());
        }
        Ok(())
    }
}

/// The `[api]` section: the client APIs' own settings type.
pub use switchyard_api::ApiConfig;

/// Everything the controller runs with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerConfig {
    /// Listen addresses and liveness (`[controller]`).
    pub controller: ControllerConfig,
    /// Which models answer each stage and tier (`[routes]`).
    pub routes: Routes,
    /// Client API limits and tokens (`[api]`).
    pub api: ApiConfig,
    /// Placement, retries, breakers, timeouts (`[scheduler]`).
    pub scheduler: SchedulerConfig,
    /// Keep-alive and pins (`[residency]`).
    pub residency: ResidencyConfig,
    /// Chunking and search of the document store (`[retrieval]`).
    pub retrieval: RetrievalConfig,
}

impl ServerConfig {
    /// Checks ranges and cross-field rules; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        let c = &self.controller;
        if c.cluster && c.listen.ip().is_loopback() {
            return Err(format!(
                "controller.listen is {}, a loopback address, but controller.cluster is set: agents on other hosts cannot reach it. Listen on all interfaces with --listen 0.0.0.0:{} (or [controller] listen = \"0.0.0.0:{}\"), or drop --cluster (controller.cluster) on a single host",
                c.listen,
                c.listen.port(),
                c.listen.port()
            ));
        }
        if !(50..=60_000).contains(&c.heartbeat_interval_ms) {
            return Err(format!(
                "controller.heartbeat_interval_ms must be 50..=60000, got {}",
                c.heartbeat_interval_ms
            ));
        }
        if c.missed_heartbeats == 0 {
            return Err("controller.missed_heartbeats must be ≥ 1".into());
        }
        let sch = &self.scheduler;
        sch.policy
            .validate()
            .map_err(|e| format!("scheduler.policy: {e}"))?;
        sch.retry
            .validate()
            .map_err(|e| format!("scheduler.retry: {e}"))?;
        sch.latency
            .validate()
            .map_err(|e| format!("scheduler.latency: {e}"))?;
        if sch.breakers.failure_threshold == 0 {
            return Err("scheduler.breakers.failure_threshold must be ≥ 1".into());
        }
        if self.residency.reconcile_interval_ms < 50 {
            return Err("residency.reconcile_interval_ms must be ≥ 50".into());
        }
        if c.data_dir.as_os_str().is_empty() {
            return Err("controller.data_dir must not be empty".into());
        }
        if c.admin_tokens.0.iter().any(|t| t.trim().len() < 16) {
            return Err("controller.admin_tokens: each token needs at least 16 characters (e.g. `openssl rand -hex 24`)".into());
        }
        self.retrieval.validate()?;
        self.api.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_controller_refuses_a_loopback_listen_address_and_names_the_flag() {
        let mut config = ServerConfig::default();
        config.controller.cluster = true;
        let err = config.validate().unwrap_err();
        assert!(err.contains("--listen 0.0.0.0:50051"), "{err}");
        assert!(err.contains("127.0.0.1:50051"), "{err}");
        config.controller.listen = "0.0.0.0:50051".parse().unwrap();
        assert_eq!(config.validate(), Ok(()));
        // Without `cluster` a loopback controller is the single-host default.
        assert_eq!(ServerConfig::default().validate(), Ok(()));
    }
}
