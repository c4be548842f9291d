//! Labelled prompts for `router fit` / `router eval`: JSONL lines `{"prompt": …, "tier": …}`
//! (also `{"text": …, "label": …}`, the shipped example's shape), checked line by line.

use serde::Deserialize;
use switchyard_scheduler::Tier;

use super::RouterError;

/// One labelled prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    /// The prompt.
    pub prompt: String,
    /// Its tier.
    pub tier: Tier,
    /// 1-based line in the file.
    pub line: usize,
}

/// A parsed file: the prompts and the tiers in order of first appearance.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledSet {
    /// Every prompt.
    pub items: Vec<Labelled>,
    /// Distinct tiers, in order of first appearance.
    pub tiers: Vec<Tier>,
}

impl LabelledSet {
    /// Each item's index into [`LabelledSet::tiers`].
    pub fn label_indices(&self) -> Vec<usize> {
        self.items
            .iter()
            .map(|it| {
                self.tiers
                    .iter()
                    .position(|t| *t == it.tier)
                    .expect("tier listed")
            })
            .collect()
    }

    /// Prompts per tier, in tier order.
    pub fn counts(&self) -> Vec<usize> {
        let labels = self.label_indices();
        (0..self.tiers.len())
            .map(|t| labels.iter().filter(|&&l| l == t).count())
            .collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(alias = "text")]
    prompt: String,
    #[serde(alias = "label")]
    tier: String,
}

/// Parses a JSONL file's text. Blank lines are skipped; anything else must be one object with
/// a non-empty `prompt` and a valid `tier`. `known`, when given, is the tier list the lines
/// must come from (evaluating an existing router).
pub fn parse_jsonl(text: &str, known: Option<&[Tier]>) -> Result<LabelledSet, RouterError> {
    let mut items = Vec::new();
    let mut tiers: Vec<Tier> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |reason: String| RouterError::Line { line, reason };
        if raw.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(raw)
            .map_err(|e| err(format!("not a {{\"prompt\", \"tier\"}} object: {e}")))?;
        if parsed.prompt.trim().is_empty() {
            return Err(err("empty prompt".into()));
        }
        let tier: Tier = parsed.tier.parse().map_err(|e| err(format!("{e}")))?;
        if let Some(known) = known.filter(|k| !k.contains(&tier)) {
            let names: Vec<&str> = known.iter().map(Tier::as_str).collect();
            return Err(err(format!(
                "unknown tier '{tier}' (this router has: {})",
                names.join(", ")
            )));
        }
        if !tiers.contains(&tier) {
            tiers.push(tier.clone());
        }
        items.push(Labelled {
            prompt: parsed.prompt,
            tier,
            line,
        });
    }
    if items.is_empty() {
        return Err(RouterError::Set("no labelled prompts in the file".into()));
    }
    Ok(LabelledSet { items, tiers })
}
