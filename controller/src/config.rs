//! The controller's own sections of the configuration file — `[controller]`, `[routes]`,
//! `[api]`, `[scheduler]`, `[residency]` — each a serde struct with defaults that refuses
//! unknown keys. The `switchyard` binary composes them (with the agent's section) into the
//! file it reads; [`ServerConfig`] is what [`crate::server::start`] runs with.

use std::net::SocketAddr;

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
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            listen: "127.0.0.1:50051".parse().expect("valid default"),
            cluster: false,
            http_listen: "127.0.0.1:8080".parse().expect("valid default"),
            heartbeat_interval_ms: 1000,
            missed_heartbeats: 3,
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
}

impl Default for Routes {
    fn default() -> Self {
        Routes {
            router: "router".into(),
            embed: "minilm-l6-v2".into(),
            fast: vec!["smollm2-135m".into()],
            code: vec!["smollm2-135m-code".into()],
            heavy: vec!["smollm2-135m-heavy".into()],
        }
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
