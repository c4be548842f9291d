//! Fitting and scoring a router head: a stratified hold-out split, multinomial logistic
//! regression by full-batch gradient descent on L2-normalised embeddings, and accuracy,
//! per-tier precision/recall and the confusion matrix.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use switchyard_scheduler::Tier;

use super::{RouterError, RouterHead};

/// How a head is fitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitOptions {
    /// Share of each tier held out for the evaluation (0 ≤ holdout < 1).
    pub holdout: f64,
    /// Gradient-descent steps over the whole set.
    pub epochs: usize,
    /// Step size.
    pub learning_rate: f32,
    /// L2 penalty on the weights.
    pub l2: f32,
    /// Seed of the hold-out shuffle.
    pub seed: u64,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            holdout: 0.2,
            epochs: 400,
            learning_rate: 2.0,
            l2: 1e-4,
            seed: 7,
        }
    }
}

/// Fewer prompts than this in a tier draw a warning.
pub const FEW_EXAMPLES: usize = 5;

/// Splits item indices into (train, held out) per tier, `holdout` of each tier held out (at
/// least one kept for training), and a warning for every tier under [`FEW_EXAMPLES`].
pub fn split_stratified(
    labels: &[usize],
    tiers: &[Tier],
    holdout: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>, Vec<String>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut train, mut test, mut warnings) = (Vec::new(), Vec::new(), Vec::new());
    for (t, tier) in tiers.iter().enumerate() {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == t).collect();
        idx.shuffle(&mut rng);
        let held = ((idx.len() as f64 * holdout).round() as usize).min(idx.len().saturating_sub(1));
        if idx.len() < FEW_EXAMPLES {
            warnings.push(format!(
                "tier '{tier}' has only {} example(s) (fewer than {FEW_EXAMPLES}); {held} held out",
                idx.len()
            ));
        }
        test.extend_from_slice(&idx[..held]);
        train.extend_from_slice(&idx[held..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    (train, test, warnings)
}

/// Fits a head on `vectors` (any length, normalised here) with `labels` indexing `tiers`.
pub fn fit_head(
    embedder: &str,
    tiers: &[Tier],
    vectors: &[Vec<f32>],
    labels: &[usize],
    opts: &FitOptions,
) -> Result<RouterHead, RouterError> {
    if tiers.len() < 2 {
        return Err(RouterError::Set(format!(
            "a router needs at least 2 tiers; the file has {} ({})",
            tiers.len(),
            tiers
                .iter()
                .map(Tier::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let dim = vectors.first().map_or(0, Vec::len);
    if dim == 0 || vectors.iter().any(|v| v.len() != dim) || vectors.len() != labels.len() {
        return Err(RouterError::Set(
            "the embeddings are empty or of unequal length".into(),
        ));
    }
    let xs: Vec<Vec<f32>> = vectors.iter().map(|v| normalised(v)).collect();
    let (mut w, mut b) = (vec![vec![0f32; dim]; tiers.len()], vec![0f32; tiers.len()]);
    for _ in 0..opts.epochs {
        descend(&mut w, &mut b, &xs, labels, opts);
    }
    Ok(RouterHead {
        format: super::FORMAT,
        embedder: embedder.to_owned(),
        dim,
        tiers: tiers.to_vec(),
        weights: w,
        bias: b,
        trained_on: vectors.len(),
        holdout_accuracy: None,
        sha256: String::new(),
    })
}

/// One full-batch gradient step of the softmax cross-entropy with an L2 penalty.
fn descend(w: &mut [Vec<f32>], b: &mut [f32], xs: &[Vec<f32>], labels: &[usize], o: &FitOptions) {
    let (k, dim, n) = (w.len(), xs[0].len(), xs.len() as f32);
    let mut gw = vec![vec![0f32; dim]; k];
    let mut gb = vec![0f32; k];
    for (x, &y) in xs.iter().zip(labels) {
        let p = softmax_scores(w, b, x);
        for c in 0..k {
            let err = p[c] - f32::from(u8::from(c == y));
            gb[c] += err;
            gw[c].iter_mut().zip(x).for_each(|(g, xi)| *g += err * xi);
        }
    }
    for c in 0..k {
        b[c] -= o.learning_rate * gb[c] / n;
        for (wi, gi) in w[c].iter_mut().zip(&gw[c]) {
            *wi -= o.learning_rate * (gi / n + o.l2 * *wi);
        }
    }
}

/// `softmax(W·x + b)`.
pub fn softmax_scores(w: &[Vec<f32>], b: &[f32], x: &[f32]) -> Vec<f32> {
    let logits: Vec<f32> = w
        .iter()
        .zip(b)
        .map(|(row, bias)| row.iter().zip(x).map(|(a, c)| a * c).sum::<f32>() + bias)
        .collect();
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// `v / |v|` (a zero vector stays zero).
pub fn normalised(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter().map(|x| x / norm).collect()
}

/// Index and value of the largest entry (the first on ties).
pub fn arg_max(p: &[f32]) -> (usize, f32) {
    p.iter()
        .copied()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, x)| {
            if x > best.1 { (i, x) } else { best }
        })
}

/// Precision and recall of one tier.
#[derive(Debug, Clone, PartialEq)]
pub struct TierScore {
    /// The tier.
    pub tier: Tier,
    /// Of the prompts routed to it, the share that belong there (`None`: none routed).
    pub precision: Option<f64>,
    /// Of the prompts that belong there, the share routed to it.
    pub recall: f64,
    /// Prompts that belong there.
    pub support: usize,
}

/// A head scored on labelled vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Share routed to their own tier.
    pub accuracy: f64,
    /// Per tier, in the head's tier order.
    pub per_tier: Vec<TierScore>,
    /// `confusion[truth][routed]` counts.
    pub confusion: Vec<Vec<usize>>,
}

/// Scores `head` on `vectors` with `labels` indexing `head.tiers`.
pub fn evaluate(
    head: &RouterHead,
    vectors: &[Vec<f32>],
    labels: &[usize],
) -> Result<Evaluation, RouterError> {
    let k = head.tiers.len();
    let mut confusion = vec![vec![0usize; k]; k];
    for (v, &y) in vectors.iter().zip(labels) {
        let (routed, _) = arg_max(&head.probabilities(v)?);
        confusion[y][routed] += 1;
    }
    let total: usize = confusion.iter().flatten().sum();
    let right: usize = (0..k).map(|i| confusion[i][i]).sum();
    let per_tier = (0..k)
        .map(|t| {
            let support: usize = confusion[t].iter().sum();
            let routed: usize = confusion.iter().map(|row| row[t]).sum();
            TierScore {
                tier: head.tiers[t].clone(),
                precision: (routed > 0).then(|| confusion[t][t] as f64 / routed as f64),
                recall: if support == 0 {
                    0.0
                } else {
                    confusion[t][t] as f64 / support as f64
                },
                support,
            }
        })
        .collect();
    Ok(Evaluation {
        accuracy: if total == 0 {
            0.0
        } else {
            right as f64 / total as f64
        },
        per_tier,
        confusion,
    })
}
