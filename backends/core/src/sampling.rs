//! Next-token choice: greedy, or temperature + top-p with a seeded RNG.

/// SplitMix64: small, fast, seedable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Index of the largest logit (first on ties).
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in logits.iter().enumerate() {
        if *v > logits[best] {
            best = i;
        }
    }
    best
}

/// Picks a token: greedy when `temperature <= 0`, else softmax(logits / T) restricted to
/// the smallest set whose mass reaches `top_p`.
pub fn sample(logits: &[f32], temperature: f32, top_p: f32, rng: &mut Rng) -> usize {
    if temperature <= 0.0 {
        return argmax(logits);
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<(usize, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i, (((l - max) / temperature) as f64).exp()))
        .collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    probs.sort_by(|a, b| b.1.total_cmp(&a.1));
    let cut = (top_p.clamp(1e-6, 1.0) as f64) * total;
    let mut mass = 0.0;
    let mut keep = 0;
    for p in &probs {
        mass += p.1;
        keep += 1;
        if mass >= cut {
            break;
        }
    }
    probs.truncate(keep);
    let mut r = rng.next_f64() * mass;
    for (i, p) in &probs {
        r -= p;
        if r <= 0.0 {
            return *i;
        }
    }
    probs.last().map(|p| p.0).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_and_top_p_behave() {
        let logits = [0.1, 3.0, 2.9, -1.0];
        let mut rng = Rng::new(7);
        assert_eq!(sample(&logits, 0.0, 1.0, &mut rng), 1);
        // A tiny top-p keeps only the best token whatever the temperature.
        for _ in 0..50 {
            assert_eq!(sample(&logits, 1.5, 1e-4, &mut rng), 1);
        }
        // With full top-p both likely tokens show up; the unlikely last one almost never.
        let picks: Vec<usize> = (0..400)
            .map(|_| sample(&logits, 1.0, 1.0, &mut rng))
            .collect();
        assert!(picks.contains(&1) && picks.contains(&2));
        // Same seed, same sequence.
        let a: Vec<usize> = {
            let mut r = Rng::new(3);
            (0..20).map(|_| sample(&logits, 1.0, 0.9, &mut r)).collect()
        };
        let b: Vec<usize> = {
            let mut r = Rng::new(3);
            (0..20).map(|_| sample(&logits, 1.0, 0.9, &mut r)).collect()
        };
        assert_eq!(a, b);
    }
}
