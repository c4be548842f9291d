//! Tiers of recent prompts: the router is deterministic, so a prompt it has classified (by
//! the same router) gets the same tier without running classify again. Keyed by the
//! router's identity and the prompt's SHA-256; least recently used out first.

use std::sync::Mutex;

use hashlink::LruCache;
use sha2::{Digest, Sha256};
use switchyard_scheduler::Tier;

/// Prompts remembered by default.
pub const DEFAULT_CAPACITY: usize = 4096;

/// The cache.
#[derive(Debug)]
pub struct TierCache {
    entries: Mutex<LruCache<[u8; 32], Tier>>,
}

impl Default for TierCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl TierCache {
    /// A cache of `capacity` prompts (0: remembers nothing).
    pub fn new(capacity: usize) -> Self {
        TierCache {
            entries: Mutex::new(LruCache::new(capacity.max(1))),
        }
    }

    fn key(router: &str, prompt: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(router.as_bytes());
        h.update([0]);
        h.update(prompt.as_bytes());
        h.finalize().into()
    }

    /// The tier `router` gave `prompt`, if remembered.
    pub fn get(&self, router: &str, prompt: &str) -> Option<Tier> {
        let key = Self::key(router, prompt);
        self.entries.lock().expect("tier cache").get(&key).cloned()
    }

    /// Remembers the tier `router` gave `prompt`.
    pub fn put(&self, router: &str, prompt: &str, tier: Tier) {
        let key = Self::key(router, prompt);
        self.entries.lock().expect("tier cache").insert(key, tier);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_router_and_forgets_the_least_recent() {
        let c = TierCache::new(2);
        c.put("router", "a", Tier::code());
        c.put("router", "b", Tier::fast());
        assert_eq!(c.get("router", "a"), Some(Tier::code()));
        assert_eq!(
            c.get("fitted:abc", "a"),
            None,
            "another router classifies afresh"
        );
        c.put("router", "c", Tier::heavy());
        assert_eq!(c.get("router", "b"), None, "b was the least recently used");
        assert_eq!(c.get("router", "a"), Some(Tier::code()));
        assert_eq!(c.get("router", "c"), Some(Tier::heavy()));
    }
}
