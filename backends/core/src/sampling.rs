//! Next-token choice: logit adjustments (logit bias, OpenAI presence/frequency penalties,
//! llama.cpp's repetition penalty), then greedy, or temperature + top-k + top-p with a
//! seeded RNG.

use std::collections::HashMap;

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

/// Logit adjustments applied before the choice; the default changes nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Penalties {
    /// Subtracted once from the logit of every token generated so far (OpenAI).
    pub presence: f32,
    /// Subtracted from a generated token's logit once per occurrence (OpenAI).
    pub frequency: f32,
    /// llama.cpp repetition penalty (0 or 1 = off): logits of the tokens among the last
    /// `repeat_last_n` (prompt and output) are divided by it when positive, multiplied when
    /// negative.
    pub repeat: f32,
    /// Window of the repetition penalty in tokens; negative = the whole context, 0 = none.
    pub repeat_last_n: i32,
    /// Added to the logits of these token ids.
    pub logit_bias: Vec<(u32, f32)>,
}

impl Penalties {
    /// True when [`Penalties::apply`] would change nothing.
    pub fn is_off(&self) -> bool {
        self.presence == 0.0
            && self.frequency == 0.0
            && (self.repeat == 0.0 || self.repeat == 1.0 || self.repeat_last_n == 0)
            && self.logit_bias.is_empty()
    }

    /// Adjusts `logits` for the next token after `prompt` and the `generated` tokens.
    pub fn apply(&self, logits: &mut [f32], prompt: &[u32], generated: &[u32]) {
        for &(id, bias) in &self.logit_bias {
            if let Some(l) = logits.get_mut(id as usize) {
                *l += bias;
            }
        }
        if self.presence != 0.0 || self.frequency != 0.0 {
            let mut counts: HashMap<u32, u32> = HashMap::new();
            for &t in generated {
                *counts.entry(t).or_default() += 1;
            }
            for (t, n) in counts {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l -= self.presence + self.frequency * n as f32;
                }
            }
        }
        if self.repeat > 0.0 && self.repeat != 1.0 && self.repeat_last_n != 0 {
            let total = prompt.len() + generated.len();
            let window = if self.repeat_last_n < 0 {
                total
            } else {
                (self.repeat_last_n as usize).min(total)
            };
            let skip = total - window;
            let mut seen: Vec<u32> = prompt.iter().chain(generated).skip(skip).copied().collect();
            seen.sort_unstable();
            seen.dedup();
            for t in seen {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = if *l > 0.0 {
                        *l / self.repeat
                    } else {
                        *l * self.repeat
                    };
                }
            }
        }
    }
}

/// Picks a token: greedy when `temperature <= 0`, else softmax(logits / T) restricted to
/// the `top_k` most likely tokens (0 = no limit), then to the smallest set whose mass
/// reaches `top_p`.
pub fn sample(logits: &[f32], temperature: f32, top_p: f32, top_k: u32, rng: &mut Rng) -> usize {
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
    let total = if top_k > 0 && (top_k as usize) < probs.len() {
        probs.truncate(top_k as usize);
        probs.iter().map(|p| p.1).sum()
    } else {
        total
    };
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
        assert_eq!(sample(&logits, 0.0, 1.0, 0, &mut rng), 1);
        // A tiny top-p keeps only the best token whatever the temperature.
        for _ in 0..50 {
            assert_eq!(sample(&logits, 1.5, 1e-4, 0, &mut rng), 1);
        }
        // With full top-p both likely tokens show up; the unlikely last one almost never.
        let picks: Vec<usize> = (0..400)
            .map(|_| sample(&logits, 1.0, 1.0, 0, &mut rng))
            .collect();
        assert!(picks.contains(&1) && picks.contains(&2));
        // Same seed, same sequence.
        let a: Vec<usize> = {
            let mut r = Rng::new(3);
            (0..20)
                .map(|_| sample(&logits, 1.0, 0.9, 0, &mut r))
                .collect()
        };
        let b: Vec<usize> = {
            let mut r = Rng::new(3);
            (0..20)
                .map(|_| sample(&logits, 1.0, 0.9, 0, &mut r))
                .collect()
        };
        assert_eq!(a, b);
    }

    #[test]
    fn top_k_keeps_only_the_k_most_likely() {
        let logits = [0.1, 3.0, 2.9, 2.8, -1.0];
        let mut rng = Rng::new(11);
        let picks: Vec<usize> = (0..400)
            .map(|_| sample(&logits, 2.0, 1.0, 2, &mut rng))
            .collect();
        assert!(picks.iter().all(|&p| p == 1 || p == 2), "{picks:?}");
        assert!(picks.contains(&1) && picks.contains(&2));
        // Without the limit the third token shows up too.
        let free: Vec<usize> = (0..400)
            .map(|_| sample(&logits, 2.0, 1.0, 0, &mut rng))
            .collect();
        assert!(free.contains(&3));
    }

    #[test]
    fn penalties_follow_their_definitions() {
        let base = [1.0f32, 2.0, -1.0, 0.5];
        // presence once per distinct generated token, frequency once per occurrence.
        let p = Penalties {
            presence: 0.5,
            frequency: 0.25,
            ..Default::default()
        };
        let mut l = base;
        p.apply(&mut l, &[3], &[1, 1, 2]);
        assert_eq!(l, [1.0, 2.0 - 0.5 - 0.5, -1.0 - 0.5 - 0.25, 0.5]);
        // The repetition penalty looks at the last n of prompt + output.
        let r = Penalties {
            repeat: 2.0,
            repeat_last_n: 2,
            ..Default::default()
        };
        let mut l = base;
        r.apply(&mut l, &[0, 3], &[2]);
        assert_eq!(l, [1.0, 2.0, -2.0, 0.25]);
        let mut l = base;
        Penalties {
            repeat_last_n: -1,
            ..r.clone()
        }
        .apply(&mut l, &[0, 3], &[2]);
        assert_eq!(l, [0.5, 2.0, -2.0, 0.25]);
        // logit bias adds to the named ids; -100 bans a token from greedy choice.
        let b = Penalties {
            logit_bias: vec![(1, -100.0), (3, 1.0)],
            ..Default::default()
        };
        let mut l = base;
        b.apply(&mut l, &[], &[]);
        assert_eq!(argmax(&l), 3);
        assert!(!b.is_off() && Penalties::default().is_off());
    }
}
