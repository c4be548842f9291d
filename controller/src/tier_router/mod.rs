//! A router fitted on the user's own tiers: labelled prompts ([`labelled`]), a softmax
//! regression head over the cluster embedder's vectors ([`fit`]), its evaluation, and the
//! checksummed file it is kept in ([`RouterHead`]). Pure: embedding happens at the edges.

pub mod fit;
pub mod labelled;

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
pub use switchyard_scheduler::Tier;

pub use fit::{Evaluation, FitOptions, TierScore, evaluate, fit_head, split_stratified};
pub use labelled::{Labelled, LabelledSet, parse_jsonl};

/// Why a router file, a labelled file or a fit was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RouterError {
    /// A line of a labelled JSONL file (1-based).
    #[error("line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The labelled set as a whole cannot train a router.
    #[error("{0}")]
    Set(String),
    /// A router file that is unreadable, altered or inconsistent.
    #[error("router file: {0}")]
    File(String),
    /// A vector whose length is not the router's embedding dimension.
    #[error("embedding dimension {got} does not match the router's {want} (embedder {embedder})")]
    Dimension {
        /// The router's dimension.
        want: usize,
        /// The vector's.
        got: usize,
        /// The embedder the router was fitted with.
        embedder: String,
    },
}

/// Version of the router file format.
pub const FORMAT: u32 = 1;

/// A fitted router: per tier, a weight vector and a bias over L2-normalised embeddings of
/// `embedder`; the tier is the arg-max of `softmax(W·v + b)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterHead {
    /// File format version ([`FORMAT`]).
    pub format: u32,
    /// The embedding model whose vectors it reads (a registry name).
    pub embedder: String,
    /// The embedding dimension.
    pub dim: usize,
    /// The tiers, in output order.
    pub tiers: Vec<Tier>,
    /// `tiers.len()` rows of `dim` weights.
    pub weights: Vec<Vec<f32>>,
    /// One bias per tier.
    pub bias: Vec<f32>,
    /// Prompts it was fitted on.
    pub trained_on: usize,
    /// Accuracy on the held-out share when it was fitted, if one was held out.
    pub holdout_accuracy: Option<f64>,
    /// SHA-256 of the fields above (hex), so an edited or truncated file is refused.
    #[serde(default)]
    pub sha256: String,
}

impl RouterHead {
    /// The checksum over every field but `sha256`.
    fn digest(&self) -> String {
        let mut unsigned = self.clone();
        unsigned.sha256.clear();
        let bytes = serde_json::to_vec(&unsigned).expect("a router head serialises");
        format!("{:x}", Sha256::digest(bytes))
    }

    /// Sets the checksum (after fitting).
    pub fn seal(mut self) -> Self {
        self.sha256 = self.digest();
        self
    }

    /// Checks shape and checksum.
    pub fn check(&self) -> Result<(), RouterError> {
        let bad = |m: String| Err(RouterError::File(m));
        if self.format != FORMAT {
            return bad(format!(
                "format {} (this build reads {FORMAT})",
                self.format
            ));
        }
        if self.tiers.len() < 2 {
            return bad(format!(
                "{} tier(s); a router needs at least 2",
                self.tiers.len()
            ));
        }
        if self.weights.len() != self.tiers.len() || self.bias.len() != self.tiers.len() {
            return bad("weights or bias do not have one row per tier".into());
        }
        if self.dim == 0 || self.weights.iter().any(|w| w.len() != self.dim) {
            return bad(format!("a weight row is not {} long", self.dim));
        }
        if self.sha256 != self.digest() {
            return bad("sha256 does not match its contents (edited or damaged)".into());
        }
        Ok(())
    }

    /// Tier probabilities for one embedding (normalised here, so any length-`dim` vector works).
    pub fn probabilities(&self, v: &[f32]) -> Result<Vec<f32>, RouterError> {
        if v.len() != self.dim {
            return Err(RouterError::Dimension {
                want: self.dim,
                got: v.len(),
                embedder: self.embedder.clone(),
            });
        }
        Ok(fit::softmax_scores(
            &self.weights,
            &self.bias,
            &fit::normalised(v),
        ))
    }

    /// The tier of one embedding and its probability.
    pub fn classify(&self, v: &[f32]) -> Result<(Tier, f32), RouterError> {
        let p = self.probabilities(v)?;
        let (i, best) = fit::arg_max(&p);
        Ok((self.tiers[i].clone(), best))
    }

    /// Reads and checks a router file.
    pub fn load(path: &Path) -> Result<Self, RouterError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RouterError::File(format!("{}: {e}", path.display())))?;
        Self::from_json(&text)
    }

    /// Parses and checks a router file's text.
    pub fn from_json(text: &str) -> Result<Self, RouterError> {
        let head: RouterHead =
            serde_json::from_str(text).map_err(|e| RouterError::File(e.to_string()))?;
        head.check()?;
        Ok(head)
    }

    /// The file's text.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a router head serialises")
    }
}

#[cfg(test)]
mod tests;
