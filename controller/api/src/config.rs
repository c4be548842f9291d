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
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            tokens: Vec::new(),
            max_body_bytes: 2 * 1024 * 1024,
            max_inputs: 256,
            max_tokens: 512,
            request_timeout_ms: 120_000,
            max_input_chars: 32_768,
        }
    }
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("tokens", &format_args!("<{} redacted>", self.tokens.len()))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_inputs", &self.max_inputs)
            .field("max_tokens", &self.max_tokens)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("max_input_chars", &self.max_input_chars)
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

    /// True when `presented` equals one of the configured tokens (constant time per token).
    pub(crate) fn token_ok(&self, presented: &str) -> bool {
        let mut ok = false;
        for t in &self.tokens {
            ok |= ct_eq(t.as_bytes(), presented.as_bytes());
        }
        ok
    }

    /// True when tokens are configured.
    pub(crate) fn auth_required(&self) -> bool {
        !self.tokens.is_empty()
    }
}

/// Compares two byte strings without an early exit on the first difference.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    diff == 0
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
        assert!(cfg.token_ok("abc"));
        assert!(cfg.token_ok("xyz"));
        assert!(!cfg.token_ok("abd"));
        assert!(!cfg.token_ok("ab"));
        assert!(!cfg.token_ok(""));
    }
}
