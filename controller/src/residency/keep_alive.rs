//! Per-model keep-alive: how long an idle model stays resident. The default comes from
//! `[residency] keep_alive_s`; a client can change it per model (Ollama's `keep_alive`), and
//! pinned models never leave. The residency loop reads it to decide unloads; `/api/ps`
//! and `ListModels` read it to say when a resident model expires.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use switchyard_api::{ApiError, KeepAlive};
use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::ResidentModel;

use crate::config::ResidencyConfig;

/// The keep-alive of every model: the default, the pins and the clients' overrides.
#[derive(Debug)]
pub struct KeepAlives {
    default: Duration,
    pinned: Vec<String>,
    overrides: Mutex<HashMap<String, KeepAlive>>,
}

impl KeepAlives {
    /// The default and pins of `config`, no overrides.
    pub fn new(config: &ResidencyConfig) -> Self {
        KeepAlives {
            default: Duration::from_secs(config.keep_alive_s),
            pinned: config.pinned.clone(),
            overrides: Mutex::new(HashMap::new()),
        }
    }

    /// True when `model` is pinned by the configuration.
    pub fn is_pinned(&self, model: &str) -> bool {
        self.pinned.iter().any(|p| p == model)
    }

    /// Refuses what cannot be honoured: unloading a pinned model.
    pub fn check(&self, model: &str, keep: KeepAlive) -> Result<(), ApiError> {
        if keep == KeepAlive::Unload && self.is_pinned(model) {
            return Err(ApiError::new(
                ErrorClass::InvalidArgument,
                format!(
                    "keep_alive 0 cannot unload model '{model}': it is pinned ([residency] pinned) and stays resident"
                ),
            )
            .with_param("keep_alive"));
        }
        Ok(())
    }

    /// Sets `model`'s keep-alive (`Default` removes the override).
    pub fn set(&self, model: &str, keep: KeepAlive) -> Result<(), ApiError> {
        self.check(model, keep)?;
        let mut o = self.overrides.lock().expect("keep-alive overrides");
        match keep {
            KeepAlive::Default => o.remove(model),
            other => o.insert(model.to_string(), other),
        };
        Ok(())
    }

    /// How long `model` may stay idle before it is unloaded; `None` = never.
    pub fn idle_limit(&self, model: &str) -> Option<Duration> {
        if self.is_pinned(model) {
            return None;
        }
        match self
            .overrides
            .lock()
            .expect("keep-alive overrides")
            .get(model)
        {
            None | Some(KeepAlive::Default) => Some(self.default),
            Some(KeepAlive::Unload) => Some(Duration::ZERO),
            Some(KeepAlive::For(d)) => Some(*d),
            Some(KeepAlive::Forever) => None,
        }
    }

    /// Called when an unload of `model` is sent: a one-shot `Unload` override is spent.
    pub fn unloading(&self, model: &str) {
        let mut o = self.overrides.lock().expect("keep-alive overrides");
        if o.get(model) == Some(&KeepAlive::Unload) {
            o.remove(model);
        }
    }

    /// Milliseconds until the residency loop unloads `r` if it stays idle; -1 = never.
    pub fn expires_in_ms(&self, r: &ResidentModel) -> i64 {
        if r.pinned {
            return -1;
        }
        match self.idle_limit(&r.model) {
            None => -1,
            Some(limit) => (limit.as_millis() as i64 - r.idle_ms as i64).max(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep_alives() -> KeepAlives {
        KeepAlives::new(&ResidencyConfig {
            keep_alive_s: 10,
            pinned: vec!["router".into()],
            reconcile_interval_ms: 1000,
        })
    }

    #[test]
    fn overrides_replace_the_default_until_reset() {
        let k = keep_alives();
        assert_eq!(k.idle_limit("m"), Some(Duration::from_secs(10)));
        k.set("m", KeepAlive::For(Duration::from_secs(90))).unwrap();
        assert_eq!(k.idle_limit("m"), Some(Duration::from_secs(90)));
        k.set("m", KeepAlive::Forever).unwrap();
        assert_eq!(k.idle_limit("m"), None);
        k.set("m", KeepAlive::Default).unwrap();
        assert_eq!(k.idle_limit("m"), Some(Duration::from_secs(10)));
    }

    #[test]
    fn unload_is_one_shot_and_refused_for_pinned_models() {
        let k = keep_alives();
        k.set("m", KeepAlive::Unload).unwrap();
        assert_eq!(k.idle_limit("m"), Some(Duration::ZERO));
        k.unloading("m");
        assert_eq!(k.idle_limit("m"), Some(Duration::from_secs(10)));
        let e = k.set("router", KeepAlive::Unload).unwrap_err();
        assert_eq!(e.class, ErrorClass::InvalidArgument);
        assert!(e.message.contains("pinned"), "{}", e.message);
        assert_eq!(k.idle_limit("router"), None);
    }

    #[test]
    fn expiry_counts_down_from_the_idle_limit() {
        let k = keep_alives();
        let r = ResidentModel {
            model: "m".into(),
            idle_ms: 4_000,
            ..Default::default()
        };
        assert_eq!(k.expires_in_ms(&r), 6_000);
        let pinned = ResidentModel {
            pinned: true,
            ..r.clone()
        };
        assert_eq!(k.expires_in_ms(&pinned), -1);
        k.set("m", KeepAlive::Unload).unwrap();
        assert_eq!(k.expires_in_ms(&r), 0);
    }
}
