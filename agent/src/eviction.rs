//! LRU eviction: which resident models to unload from a device so that another fits.
//!
//! Only idle models are candidates: a model with requests in flight, or pinned by the
//! controller, stays. The least recently used go first, and no more than needed.

use std::time::Instant;

/// A resident model as the eviction policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvictionCandidate {
    /// Model name.
    pub model: String,
    /// Memory it reserves on the device, bytes.
    pub memory_bytes: u64,
    /// When it last served a request (or was loaded).
    pub last_used: Instant,
    /// Requests queued or running on it.
    pub in_flight: u32,
    /// Pinned by the controller.
    pub pinned: bool,
}

/// Why a model cannot be made to fit even after evicting every idle model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "needs {needed_mib} MiB, {free_mib} MiB of {total_mib} MiB unreserved and only {evictable_mib} MiB \
     held by idle models that could be evicted (busy or pinned: {kept})"
)]
pub struct NoRoom {
    /// Memory the model to load needs, MiB.
    pub needed_mib: u64,
    /// Device memory not reserved by resident models, MiB.
    pub free_mib: u64,
    /// Device memory size, MiB.
    pub total_mib: u64,
    /// Memory held by idle, unpinned models that could be evicted, MiB.
    pub evictable_mib: u64,
    /// Models that hold memory but may not be evicted, comma-separated.
    pub kept: String,
}

/// The models to evict, least recently used first, so that `needed` bytes fit in a device
/// of `total` bytes already holding `residents` (the model being loaded is not among them).
/// Empty when it fits as is. `total == 0` means the size is unknown: nothing is evicted.
pub fn plan_eviction(
    residents: &[EvictionCandidate],
    needed: u64,
    total: u64,
) -> Result<Vec<String>, NoRoom> {
    if total == 0 {
        return Ok(Vec::new());
    }
    let used: u64 = residents.iter().map(|r| r.memory_bytes).sum();
    let free = total.saturating_sub(used);
    if needed <= free {
        return Ok(Vec::new());
    }
    let mut idle: Vec<&EvictionCandidate> = residents
        .iter()
        .filter(|r| r.in_flight == 0 && !r.pinned)
        .collect();
    idle.sort_by(|a, b| {
        a.last_used
            .cmp(&b.last_used)
            .then_with(|| a.model.cmp(&b.model))
    });
    let mut reclaimed = 0u64;
    let mut evict = Vec::new();
    for r in &idle {
        if needed <= free + reclaimed {
            break;
        }
        reclaimed += r.memory_bytes;
        evict.push(r.model.clone());
    }
    if needed <= free + reclaimed {
        return Ok(evict);
    }
    let mut kept: Vec<String> = residents
        .iter()
        .filter(|r| r.in_flight > 0 || r.pinned)
        .map(|r| {
            let why = if r.pinned { "pinned" } else { "in use" };
            format!("{} ({why})", r.model)
        })
        .collect();
    kept.sort();
    Err(NoRoom {
        needed_mib: needed >> 20,
        free_mib: free >> 20,
        total_mib: total >> 20,
        evictable_mib: reclaimed >> 20,
        kept: if kept.is_empty() {
            "none".into()
        } else {
            kept.join(", ")
        },
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MB: u64 = 1 << 20;

    fn model(name: &str, mb: u64, age_s: u64, in_flight: u32, pinned: bool) -> EvictionCandidate {
        EvictionCandidate {
            model: name.into(),
            memory_bytes: mb * MB,
            last_used: Instant::now() - Duration::from_secs(age_s),
            in_flight,
            pinned,
        }
    }

    #[test]
    fn nothing_is_evicted_when_the_model_fits() {
        let r = [model("a", 400, 10, 0, false)];
        assert_eq!(plan_eviction(&r, 500 * MB, 1000 * MB), Ok(vec![]));
        // Unknown device size: no eviction decisions at all.
        assert_eq!(plan_eviction(&r, 5000 * MB, 0), Ok(vec![]));
    }

    #[test]
    fn least_recently_used_go_first_and_no_more_than_needed() {
        let r = [
            model("recent", 300, 1, 0, false),
            model("oldest", 300, 100, 0, false),
            model("older", 300, 50, 0, false),
        ];
        // 100 MB free; 350 MB needed: evicting the oldest (300 MB) is enough.
        assert_eq!(
            plan_eviction(&r, 350 * MB, 1000 * MB),
            Ok(vec!["oldest".to_string()])
        );
        // 650 MB needed: the two oldest, in LRU order; the most recent stays.
        assert_eq!(
            plan_eviction(&r, 650 * MB, 1000 * MB),
            Ok(vec!["oldest".to_string(), "older".to_string()])
        );
    }

    #[test]
    fn busy_and_pinned_models_are_never_evicted() {
        let r = [
            model("busy", 300, 100, 2, false),
            model("pinned", 300, 90, 0, true),
            model("idle", 300, 1, 0, false),
        ];
        // The idle one is the most recent but the only candidate.
        assert_eq!(
            plan_eviction(&r, 350 * MB, 1000 * MB),
            Ok(vec!["idle".to_string()])
        );
        let err = plan_eviction(&r, 500 * MB, 1000 * MB).unwrap_err();
        assert_eq!(err.evictable_mib, 300);
        assert_eq!(err.free_mib, 100);
        assert_eq!(err.kept, "busy (in use), pinned (pinned)");
        let msg = err.to_string();
        assert!(msg.contains("needs 500 MiB"), "{msg}");
        assert!(msg.contains("busy (in use)"), "{msg}");
    }

    #[test]
    fn a_model_larger_than_the_device_is_refused_without_evicting() {
        let r = [model("a", 100, 10, 0, false)];
        let err = plan_eviction(&r, 2000 * MB, 1000 * MB).unwrap_err();
        assert_eq!(err.total_mib, 1000);
        assert_eq!(err.kept, "none");
    }
}
