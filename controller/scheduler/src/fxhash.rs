//! A small, fast, non-cryptographic hasher (the Fx hash of rustc) for the scheduler's
//! string-keyed maps, which sit on the placement hot path. Keys are node, device and model
//! names from the controller's own state, not raw client input, so HashDoS resistance is not
//! needed here.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// Fx hasher state.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A 64-bit key for a (node, device) pair, precomputed in the view's index so hot-path
/// lookups hash nothing. Used only for soft signals (latency scoring): a collision between two
/// devices would blend their latency estimates, never place a model where it does not fit.
pub(crate) fn device_key(node: &str, device: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write_usize(node.len());
    h.write(node.as_bytes());
    h.write_usize(device.len());
    h.write(device.as_bytes());
    h.finish()
}

/// `HashMap` with the Fx hasher.
pub(crate) type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_works_and_distinguishes_prefixes() {
        let mut m: FxHashMap<String, u32> = FxHashMap::default();
        for (i, k) in [
            "",
            "a",
            "ab",
            "abcdefgh",
            "abcdefghi",
            "node-0001",
            "node-0010",
        ]
        .iter()
        .enumerate()
        {
            m.insert(k.to_string(), i as u32);
        }
        assert_eq!(m.len(), 7);
        assert_eq!(m.get("abcdefghi"), Some(&4));
        assert_eq!(m.get("node-0010"), Some(&6));
        assert_eq!(m.get("node-0100"), None);
        let h = |s: &str| {
            let mut x = FxHasher::default();
            x.write(s.as_bytes());
            x.finish()
        };
        assert_ne!(h("node-0001"), h("node-0010"));
        assert_ne!(device_key("ab", "c"), device_key("a", "bc"));
        assert_eq!(device_key("n", "d"), device_key("n", "d"));
    }
}
