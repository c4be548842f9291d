//! The configuration file: every section of every part (controller, agent, models, routes,
//! API, scheduler, residency), each the owning library's own settings type. Strict: an
//! unknown key is an error naming the key and its line and column.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use switchyard_agent::AgentSettings;
use switchyard_controller::config::{
    ApiConfig, ControllerConfig, ResidencyConfig, RetrievalConfig, Routes, SchedulerConfig,
    ServerConfig,
};

/// Model settings (`[models]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Model registry file; `None`: the registry compiled into the binary
    /// (`models/registry.toml` of its source tree).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<PathBuf>,
    /// Directory holding prepared model files.
    pub dir: PathBuf,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            registry: None,
            dir: switchyard_backend_core::paths::cache_dir().join("models"),
        }
    }
}

/// Engines the agent supervises (`[engines]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EnginesConfig {
    /// llama.cpp's `llama-server` (`[engines.llama_cpp]`).
    pub llama_cpp: switchyard_agent::engines::LlamaCppSettings,
}

/// Device discovery (`[discovery]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// Place on a software Vulkan device (Mesa lavapipe: it computes on the CPU, slowly) as
    /// if it were a GPU. For tests of the GPU path on machines without one; never by default.
    /// Also `SWITCHYARD_SOFTWARE_GPU=1`.
    pub software_gpu: bool,
    /// At most this many MiB of a device (by its id, as `switchyard devices` lists it) are
    /// Switchyard's: `{ "GPU-6f…" = 12288 }` leaves the rest of a 16 GB card to the desktop.
    /// A model bigger than that runs partly on the host (llama.cpp's `-ngl`).
    pub memory_limit_mib: std::collections::BTreeMap<String, u64>,
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Controller settings (`[controller]`).
    pub controller: ControllerConfig,
    /// Agent settings (`[agent]`).
    pub agent: AgentSettings,
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
    /// Document chunking and retrieval.
    pub retrieval: RetrievalConfig,
    /// Supervised engines (`[engines.llama_cpp] server = "…"`).
    pub engines: EnginesConfig,
    /// Device discovery.
    pub discovery: DiscoveryConfig,
}

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

impl Config {
    /// The controller's sections, as the server runs with them.
    pub fn server(&self) -> ServerConfig {
        ServerConfig {
            controller: self.controller.clone(),
            routes: self.routes.clone(),
            api: self.api.clone(),
            scheduler: self.scheduler.clone(),
            residency: self.residency.clone(),
            retrieval: self.retrieval.clone(),
        }
    }

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
        if let Some((id, _)) = self
            .discovery
            .memory_limit_mib
            .iter()
            .find(|(_, m)| **m == 0)
        {
            return Err(ConfigError::Invalid(format!(
                "discovery.memory_limit_mib.\"{id}\" = 0: a limit must be at least 1 MiB (remove the entry for no limit)"
            )));
        }
        self.agent.validate().map_err(ConfigError::Invalid)?;
        self.server().validate().map_err(ConfigError::Invalid)
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
        if copy.api.metrics_token.is_some() {
            copy.api.metrics_token = Some("<redacted>".into());
        }
        for t in &mut copy.controller.admin_tokens.0 {
            *t = "<redacted>".into();
        }
        if copy.agent.join_token.is_some() {
            copy.agent.join_token = Some("<redacted>".into());
        }
        for e in &mut copy.agent.endpoints {
            if e.token.is_some() {
                e.token = Some("<redacted>".into());
            }
        }
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
        let joined = Config::parse(
            "[agent]\njoin_token = \"SY10::abc::def.t0ps3cret\"\n",
            Path::new("c"),
        )
        .unwrap();
        assert!(
            !joined.redacted().contains("t0ps3cret"),
            "{}",
            joined.redacted()
        );
        let secrets = Config::parse(
            "[controller]\nadmin_tokens = [\"adm1n-0123456789abcdef\"]\n[api]\nmetrics_token = \"scr4pe\"\n[api.tls]\ncluster = true\n",
            Path::new("c"),
        )
        .unwrap();
        secrets.validate().unwrap();
        let shown = secrets.redacted();
        assert!(
            !shown.contains("adm1n") && !shown.contains("scr4pe"),
            "{shown}"
        );
        assert!(shown.contains("cluster = true"), "{shown}");
        let short =
            Config::parse("[controller]\nadmin_tokens = [\"short\"]\n", Path::new("c")).unwrap();
        assert!(
            short
                .validate()
                .unwrap_err()
                .to_string()
                .contains("16 characters")
        );
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
mod endpoint_tests {
    use super::*;

    #[test]
    fn attached_endpoints_parse_validate_and_redact_their_token() {
        let text = "[[agent.endpoints]]\nname = \"box\"\nkind = \"ollama\"\nurl = \"http://10.0.0.7:11434\"\ndevice = \"nvidia_gpu\"\ntoken = \"t0p\"\n\n[[agent.endpoints]]\nname = \"vllm\"\nkind = \"openai\"\nurl = \"http://10.0.0.8:8000/v1\"\n";
        let c = Config::parse(text, Path::new("c")).unwrap();
        assert_eq!(c.agent.endpoints.len(), 2);
        assert_eq!(c.agent.endpoints[1].base_url(), "http://10.0.0.8:8000");
        c.validate().unwrap();
        assert!(!c.redacted().contains("t0p"));
        for (bad, needle) in [
            ("kind = \"tgi\"\nurl = \"http://h:1\"", "unknown variant"),
            ("kind = \"ollama\"\nurl = \"https://h:1\"", "http://"),
            (
                "kind = \"ollama\"\nurl = \"http://h:1\"\ndevice = \"tpu\"",
                "device must be one of",
            ),
            (
                "kind = \"ollama\"\nurl = \"http://h:1\"\ncolour = 1",
                "colour",
            ),
        ] {
            let text = format!("[[agent.endpoints]]\nname = \"x\"\n{bad}\n");
            let err = match Config::parse(&text, Path::new("c")) {
                Err(e) => e.to_string(),
                Ok(c) => c.validate().unwrap_err().to_string(),
            };
            assert!(err.contains(needle), "{bad}: {err}");
        }
        let twice = "[[agent.endpoints]]\nname = \"a\"\nkind = \"ollama\"\nurl = \"http://h:1\"\n[[agent.endpoints]]\nname = \"a\"\nkind = \"openai\"\nurl = \"http://h:2\"\n";
        let err = Config::parse(twice, Path::new("c"))
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }
}

#[cfg(test)]
mod readme_tests {
    use super::*;

    #[test]
    fn the_readme_configuration_examples_are_valid() {
        let readme = include_str!("../../../README.md");
        // Every plain ```toml block is a configuration file (registry examples are fenced
        // as ```toml models/registry.toml).
        let blocks: Vec<&str> = readme
            .split("```toml\n")
            .skip(1)
            .map(|b| &b[..b.find("```").expect("closed block")])
            .collect();
        assert!(blocks.len() >= 2, "the attach and configuration examples");
        for block in &blocks {
            let config = Config::parse(block, Path::new("README.md"))
                .unwrap_or_else(|e| panic!("README example does not parse: {e}\n{block}"));
            config.validate().expect("README example validates");
        }
        let example = &readme[readme.find("## Configuration example").expect("section")..];
        let start = example.find("```toml\n").expect("a toml block") + 8;
        let end = start + example[start..].find("```").expect("closed block");
        let config = Config::parse(&example[start..end], Path::new("README.md")).unwrap();
        assert_eq!(config.api.tokens, vec!["change-me".to_string()]);
        assert_eq!(config.scheduler.breakers.cooldown_ms, 10_000);
        let attach = blocks
            .iter()
            .find(|b| b.contains("[[agent.endpoints]]"))
            .expect("the attach example");
        let attach = Config::parse(attach, Path::new("README.md")).unwrap();
        assert_eq!(attach.agent.endpoints[0].name, "gpu-box");
    }
}
