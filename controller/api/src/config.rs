//! Limits and credentials of the client APIs.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of the HTTP and gRPC client APIs: the controller's `[api]` configuration section
/// as it is (unknown keys are refused).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Bearer tokens accepted on every `/v1` route and on the gRPC `Inference` service;
    /// empty = no authentication. Never logged (see the `Debug` impl).
    pub tokens: Vec<String>,
    /// A file of more tokens, one per line (a Kubernetes Secret, a root-only file); read at
    /// start. Never logged.
    pub tokens_file: Option<std::path::PathBuf>,
    /// The store of scoped tokens (`switchyard token create --api`): the controller's
    /// `<data_dir>/api-tokens.json`, set by the binary, not by the file.
    #[serde(skip)]
    pub token_store: Option<std::path::PathBuf>,
    /// Largest HTTP request body, bytes (413 above it).
    pub max_body_bytes: usize,
    /// Most inputs (texts, documents) in one request.
    pub max_inputs: usize,
    /// Largest `max_tokens` a generation may ask for.
    pub max_tokens: u32,
    /// Whole-request deadline in milliseconds; gRPC clients may ask for less with
    /// `grpc-timeout`.
    pub request_timeout_ms: u64,
    /// Most characters in one input text or chat message. Tokens are counted (and refused
    /// or truncated per the model registry) by the agent.
    pub max_input_chars: usize,
    /// Bearer token `/metrics` requires (Prometheus: `authorization: {credentials: …}`);
    /// unset = open. `/health` and `/ready` stay open either way. Never logged.
    pub metrics_token: Option<String>,
    /// HTTPS for the HTTP API (`[api.tls]`); unset = plain HTTP.
    pub tls: Option<HttpTls>,
}

/// Where the HTTP API's certificate comes from: files the operator supplies (`cert` + `key`,
/// PEM), or (`cluster = true`) the controller's server certificate that the cluster CA
/// issued, which clients verify with the CA's `ca.pem`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpTls {
    /// PEM certificate chain (leaf first).
    pub cert: Option<std::path::PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<std::path::PathBuf>,
    /// Serve the certificate the cluster CA issued to the controller.
    pub cluster: bool,
}

/// The certificate source [`HttpTls`] names, once validated.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpTlsSource<'a> {
    /// Operator-supplied PEM files.
    Files {
        /// Certificate chain.
        cert: &'a std::path::Path,
        /// Private key.
        key: &'a std::path::Path,
    },
    /// The controller's CA-issued server certificate.
    Cluster,
}

impl HttpTls {
    /// The one source this section names, or why it names none or two.
    pub fn source(&self) -> Result<HttpTlsSource<'_>, String> {
        match (&self.cert, &self.key, self.cluster) {
            (Some(cert), Some(key), false) => Ok(HttpTlsSource::Files { cert, key }),
            (None, None, true) => Ok(HttpTlsSource::Cluster),
            (Some(_), Some(_), true) => {
                Err("api.tls: set either cert + key or cluster = true, not both".into())
            }
            (Some(_), None, _) => Err("api.tls.cert is set but api.tls.key is not".into()),
            (None, Some(_), _) => Err("api.tls.key is set but api.tls.cert is not".into()),
            (None, None, false) => Err(
                "api.tls needs cert + key (PEM files) or cluster = true (the certificate the cluster CA issues)".into(),
            ),
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            tokens: Vec::new(),
            tokens_file: None,
            token_store: None,
            max_body_bytes: 2 * 1024 * 1024,
            max_inputs: 256,
            max_tokens: 512,
            request_timeout_ms: 120_000,
            max_input_chars: 32_768,
            metrics_token: None,
            tls: None,
        }
    }
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("tokens", &format_args!("<{} redacted>", self.tokens.len()))
            .field("tokens_file", &self.tokens_file)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_inputs", &self.max_inputs)
            .field("max_tokens", &self.max_tokens)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("max_input_chars", &self.max_input_chars)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "<redacted>"),
            )
            .field("tls", &self.tls)
            .finish()
    }
}

impl ApiConfig {
    /// The whole-request deadline.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Checks ranges and tokens; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.tokens.iter().any(|t| t.trim().is_empty()) {
            return Err("api.tokens must not contain empty tokens".into());
        }
        if self
            .metrics_token
            .as_ref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err(
                "api.metrics_token must not be empty (leave it out for an open /metrics)".into(),
            );
        }
        if let Some(tls) = &self.tls {
            tls.source()?;
        }
        for (key, value) in [
            ("max_body_bytes", self.max_body_bytes as u64),
            ("max_inputs", self.max_inputs as u64),
            ("max_tokens", u64::from(self.max_tokens)),
            ("request_timeout_ms", self.request_timeout_ms),
            ("max_input_chars", self.max_input_chars as u64),
        ] {
            if value == 0 {
                return Err(format!("api.{key} must be ≥ 1"));
            }
        }
        Ok(())
    }

    /// The credentials these settings name: the configured tokens and the scoped store.
    pub fn credentials(&self) -> crate::credentials::Credentials {
        crate::credentials::Credentials::new(
            self.tokens.clone(),
            self.token_store
                .as_deref()
                .map(crate::credentials::ApiTokenStore::at),
        )
    }

    /// True when `/metrics` may be read with the `Authorization` value `presented`.
    pub fn metrics_allowed(&self, presented: Option<&str>) -> bool {
        match &self.metrics_token {
            None => true,
            Some(t) => presented
                .and_then(crate::http::bearer)
                .is_some_and(|p| ct_eq(t.as_bytes(), p.as_bytes())),
        }
    }
}

/// Compares two byte strings in time that depends only on their lengths (every token
/// check, here and the controller's admin tokens).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_tokens() {
        let cfg = ApiConfig {
            tokens: vec!["s3cret-token".into()],
            ..ApiConfig::default()
        };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("1 redacted"), "{shown}");
    }

    #[test]
    fn tokens_compare_exactly() {
        let cfg = ApiConfig {
            tokens: vec!["abc".into(), "xyz".into()],
            ..ApiConfig::default()
        };
        let creds = cfg.credentials();
        let ok = |t: &str| creds.scope_of(Some(t)).is_ok();
        assert!(ok("abc"));
        assert!(ok("xyz"));
        assert!(!ok("abd"));
        assert!(!ok("ab"));
        assert!(!ok(""));
    }

    #[test]
    fn metrics_token_is_required_only_when_set_and_redacted() {
        let open = ApiConfig::default();
        assert!(open.metrics_allowed(None));
        let cfg = ApiConfig {
            metrics_token: Some("scrape-me".into()),
            ..ApiConfig::default()
        };
        assert!(cfg.metrics_allowed(Some("Bearer scrape-me")));
        assert!(!cfg.metrics_allowed(Some("Bearer scrape-mf")));
        assert!(!cfg.metrics_allowed(Some("scrape-me")));
        assert!(!cfg.metrics_allowed(None));
        assert!(!format!("{cfg:?}").contains("scrape-me"));
        let empty = ApiConfig {
            metrics_token: Some(" ".into()),
            ..ApiConfig::default()
        };
        assert!(empty.validate().unwrap_err().contains("metrics_token"));
    }

    #[test]
    fn tls_section_names_exactly_one_source() {
        let files = HttpTls {
            cert: Some("a.pem".into()),
            key: Some("a.key".into()),
            cluster: false,
        };
        assert!(matches!(files.source(), Ok(HttpTlsSource::Files { .. })));
        let cluster = HttpTls {
            cluster: true,
            ..HttpTls::default()
        };
        assert_eq!(cluster.source(), Ok(HttpTlsSource::Cluster));
        let both = HttpTls {
            cluster: true,
            ..files.clone()
        };
        assert!(both.source().unwrap_err().contains("not both"));
        let half = HttpTls { key: None, ..files };
        assert!(half.source().unwrap_err().contains("api.tls.key"));
        let none = ApiConfig {
            tls: Some(HttpTls::default()),
            ..ApiConfig::default()
        };
        assert!(none.validate().unwrap_err().contains("cluster = true"));
    }
}
