//! The scheduler's string-keyed maps, which sit on the placement hot path, hash with rustc's
//! Fx hash (the `rustc-hash` crate): keys are node, device and model names from the
//! controller's own state, not raw client input, so HashDoS resistance is not needed here.

use std::hash::Hasher;

pub(crate) use rustc_hash::FxHashMap;

/// A 64-bit key for a (node, device) pair, precomputed in the view's index so hot-path
/// lookups hash nothing. Used only for soft signals (latency scoring): a collision between two
/// devices would blend their latency estimates, never place a model where it does not fit.
pub(crate) fn device_key(node: &str, device: &str) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    h.write_usize(node.len());
    h.write(node.as_bytes());
    h.write_usize(device.len());
    h.write(device.as_bytes());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_works_and_device_keys_distinguish_where_the_names_split() {
        let mut m: FxHashMap<String, u32> = FxHashMap::default();
        for (i, k) in ["", "a", "ab", "abcdefghi", "node-0001", "node-0010"]
            .iter()
            .enumerate()
        {
            m.insert(k.to_string(), i as u32);
        }
        assert_eq!(m.len(), 6);
        assert_eq!(m.get("node-0010"), Some(&5));
        assert_eq!(m.get("node-0100"), None);
        assert_ne!(device_key("ab", "c"), device_key("a", "bc"));
        assert_ne!(
            device_key("node-0001", "cpu"),
            device_key("node-0010", "cpu")
        );
        assert_eq!(device_key("n", "d"), device_key("n", "d"));
    }
}
