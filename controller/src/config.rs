//! Configuration: defaults < TOML file < `SWITCHYARD_*` environment < command-line flags.
//!
//! The file is strict: an unknown key is an error naming the key and its line and column.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Controller settings (`[controller]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ControllerConfig {
    /// gRPC address (registry, cluster, inference).
    pub listen: SocketAddr,
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
            http_listen: "127.0.0.1:8080".parse().expect("valid default"),
            heartbeat_interval_ms: 1000,
            missed_heartbeats: 3,
        }
    }
}

/// Agent settings (`[agent]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Unique node name (default: the host name).
    pub node_name: String,
    /// Controller gRPC URL.
    pub controller: String,
    /// Data-path gRPC address.
    pub listen: SocketAddr,
    /// URL the controller should use to reach this agent (default: derived from `listen`).
    pub advertise: Option<String>,
    /// Longest wait to fill a classify/embed batch, milliseconds.
    pub batch_max_wait_ms: u64,
    /// Waiting requests per model × device before refusing more.
    pub queue_capacity: usize,
    /// Serve a recorded inventory (a fixture tree) instead of this host's devices; every
    /// device is marked simulated and executes on the CPU.
    pub fixture: Option<PathBuf>,
    /// Measure effective TOPS of every usable backend × device at start.
    pub calibrate: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            node_name: default_node_name(),
            controller: "http://127.0.0.1:50051".into(),
            listen: "127.0.0.1:0".parse().expect("valid default"),
            advertise: None,
            batch_max_wait_ms: 2,
            queue_capacity: 256,
            fixture: None,
            calibrate: false,
        }
    }
}

/// Model settings (`[models]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Model registry file.
    pub registry: PathBuf,
    /// Directory holding prepared model files.
    pub dir: PathBuf,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            registry: default_registry_path(),
            dir: cache_dir().join("models"),
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Controller settings (`[controller]`).
    pub controller: ControllerConfig,
    /// Agent settings (`[agent]`).
    pub agent: AgentConfig,
    /// Model registry and model files (`[models]`).
    pub models: ModelsConfig,
    /// Generation tiers → model names, in fallback order within the tier.
    pub routes: Routes,
    /// Client API settings.
    pub api: ApiConfig,
    /// Placement policy, retries, circuit breakers, adaptive timeouts.
    #[serde(skip_serializing)]
    pub scheduler: SchedulerConfig,
    /// Model residency: keep-alive and pinned models.
    pub residency: ResidencyConfig,
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

/// A configuration error, on one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema (e.g. an unknown key).
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// Line of the error, 1-based.
        line: usize,
        /// Column of the error, 1-based.
        column: usize,
        /// The parser's message, on one line.
        message: String,
    },
    /// The values parse but break a rule (out of range, inconsistent fields).
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// `${XDG_CACHE_HOME:-$HOME/.cache}/switchyard`.
pub fn cache_dir() -> PathBuf {
    switchyard_backend_core::paths::cache_dir()
}

fn default_registry_path() -> PathBuf {
    // Next to the binary's repo checkout when run from it, else the cache copy.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/registry.toml");
    if repo.is_file() {
        repo
    } else {
        cache_dir().join("registry.toml")
    }
}

fn default_node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "node".into())
}

impl Config {
    /// Parses TOML text; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                column,
                message: e.message().trim().replace('\n', " "),
            }
        })
    }

    /// Reads the file at `path`, or the defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Checks cross-field rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let c = &self.controller;
        if !(50..=60_000).contains(&c.heartbeat_interval_ms) {
            return Err(ConfigError::Invalid(format!(
                "controller.heartbeat_interval_ms must be 50..=60000, got {}",
                c.heartbeat_interval_ms
            )));
        }
        if c.missed_heartbeats == 0 {
            return Err(ConfigError::Invalid(
                "controller.missed_heartbeats must be ≥ 1".into(),
            ));
        }
        if self.agent.queue_capacity == 0 {
            return Err(ConfigError::Invalid(
                "agent.queue_capacity must be ≥ 1".into(),
            ));
        }
        let sch = &self.scheduler;
        sch.policy
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("scheduler.policy: {e}")))?;
        sch.retry
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("scheduler.retry: {e}")))?;
        sch.latency
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("scheduler.latency: {e}")))?;
        if sch.breakers.failure_threshold == 0 {
            return Err(ConfigError::Invalid(
                "scheduler.breakers.failure_threshold must be ≥ 1".into(),
            ));
        }
        if self.residency.reconcile_interval_ms < 50 {
            return Err(ConfigError::Invalid(
                "residency.reconcile_interval_ms must be ≥ 50".into(),
            ));
        }
        self.api.validate().map_err(ConfigError::Invalid)?;
        Ok(())
    }

    /// The effective configuration as TOML with secrets redacted, for the start-up log.
    pub fn redacted(&self) -> String {
        let mut copy = self.clone();
        copy.api.tokens = copy
            .api
            .tokens
            .iter()
            .map(|_| "<redacted>".to_string())
            .collect();
        toml::to_string(&copy).unwrap_or_default()
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map(|i| offset - i).unwrap_or(offset + 1);
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_named_with_position() {
        let text = "[controller]\nlisten = \"127.0.0.1:1\"\nbogus_key = 3\n";
        let err = Config::parse(text, Path::new("sy.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("sy.toml:3:1:"), "{err}");
        assert!(err.contains("bogus_key"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn malformed_file_is_one_line_with_position() {
        let err = Config::parse("[agent\nnode_name = 1", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.toml:1:"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let err = Config::parse("[agent]\nnode_name = 1\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.toml:2:"), "{err}");
    }

    #[test]
    fn file_values_override_defaults_and_validate() {
        let c = Config::parse(
            "[controller]\nheartbeat_interval_ms = 250\n[api]\ntokens=[\"s3cret\"]\n",
            Path::new("c"),
        )
        .unwrap();
        assert_eq!(c.controller.heartbeat_interval_ms, 250);
        assert_eq!(c.controller.missed_heartbeats, 3);
        assert!(c.validate().is_ok());
        assert!(!c.redacted().contains("s3cret"));
        let bad =
            Config::parse("[controller]\nheartbeat_interval_ms = 1\n", Path::new("c")).unwrap();
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("heartbeat_interval_ms")
        );
    }
}

#[cfg(test)]
mod readme_tests {
    use super::*;

    #[test]
    fn the_readme_configuration_example_is_valid() {
        let readme = include_str!("../../README.md");
        let start = readme.find("```toml\n").expect("a toml block in README") + 8;
        let end = start + readme[start..].find("```").expect("closed block");
        let config = Config::parse(&readme[start..end], Path::new("README.md"))
            .expect("README example parses");
        config.validate().expect("README example validates");
        assert_eq!(config.api.tokens, vec!["change-me".to_string()]);
        assert_eq!(config.scheduler.breakers.cooldown_ms, 10_000);
    }
}
