//! Tier fallback: which generator answers when the requested tier has nowhere to run.
//!
//! The router classifies a prompt into a [`Tier`]; [`TierRoutes`] lists the models of each tier
//! (best first). When no model of a tier has a healthy placement, the next tier in
//! [`fallback_order`] is tried:
//!
//! | requested | order | why |
//! |---|---|---|
//! | `heavy` | heavy → code → fast | degrade gradually: the next most capable model first |
//! | `code`  | code → heavy → fast | a general heavy model codes better than the fast one |
//! | `fast`  | fast → code → heavy | stay cheap: the mid tier before the largest |

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use switchyard_backend_core::{Precision, StageKind};

use crate::scheduler::{Placement, PlacementContext, PlacementRequest};

/// Answer tiers chosen by the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Short, cheap answers.
    Fast,
    /// Programming questions.
    Code,
    /// Long or hard questions.
    Heavy,
}

impl Tier {
    /// All tiers.
    pub const ALL: [Tier; 3] = [Tier::Fast, Tier::Code, Tier::Heavy];

    /// `fast`, `code` or `heavy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Fast => "fast",
            Tier::Code => "code",
            Tier::Heavy => "heavy",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a tier name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tier {0:?} (expected fast, code or heavy)")]
pub struct TierParseError(pub String);

impl FromStr for Tier {
    type Err = TierParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fast" => Ok(Tier::Fast),
            "code" => Ok(Tier::Code),
            "heavy" => Ok(Tier::Heavy),
            other => Err(TierParseError(other.to_owned())),
        }
    }
}

/// Tiers to try, in order, for a requested tier (see the module table).
pub fn fallback_order(tier: Tier) -> [Tier; 3] {
    match tier {
        Tier::Heavy => [Tier::Heavy, Tier::Code, Tier::Fast],
        Tier::Code => [Tier::Code, Tier::Heavy, Tier::Fast],
        Tier::Fast => [Tier::Fast, Tier::Code, Tier::Heavy],
    }
}

/// Generator models per tier, best first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TierRoutes {
    /// Fast tier models.
    pub fast: Vec<String>,
    /// Code tier models.
    pub code: Vec<String>,
    /// Heavy tier models.
    pub heavy: Vec<String>,
}

impl TierRoutes {
    /// Models of one tier.
    pub fn models(&self, tier: Tier) -> &[String] {
        match tier {
            Tier::Fast => &self.fast,
            Tier::Code => &self.code,
            Tier::Heavy => &self.heavy,
        }
    }

    /// Adds a model to a tier (e.g. from registry entries' `tier` field).
    pub fn push(&mut self, tier: Tier, model: impl Into<String>) {
        match tier {
            Tier::Fast => self.fast.push(model.into()),
            Tier::Code => self.code.push(model.into()),
            Tier::Heavy => self.heavy.push(model.into()),
        }
    }
}

/// What placing a model needs to know about it (from the model registry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDemand {
    /// Memory when loaded, bytes.
    pub memory_bytes: u64,
    /// Backends it runs on; `None`: any.
    pub backends: Option<Vec<String>>,
    /// The precision it computes at.
    pub precision: Precision,
}

/// The chosen generator.
#[derive(Debug, Clone, PartialEq)]
pub struct TierChoice {
    /// Model name.
    pub model: String,
    /// Tier the router asked for.
    pub requested: Tier,
    /// Tier that answers (differs from `requested` after a fallback).
    pub tier_used: Tier,
    /// Its placement (at least one candidate).
    pub placement: Placement,
}

/// One model that was skipped while choosing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedModel {
    /// Its tier.
    pub tier: Tier,
    /// Model name.
    pub model: String,
    /// Why: `no registry entry` or `no eligible device`.
    pub why: &'static str,
}

/// No tier could answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no generator of tier {requested} or its fallbacks can be placed ({})", describe(.tried))]
pub struct NoTierAvailable {
    /// Tier the router asked for.
    pub requested: Tier,
    /// Every model tried, in order.
    pub tried: Vec<SkippedModel>,
}

fn describe(tried: &[SkippedModel]) -> String {
    if tried.is_empty() {
        return "no models configured".to_owned();
    }
    tried
        .iter()
        .map(|s| format!("{}/{}: {}", s.tier, s.model, s.why))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Picks the first model, following [`fallback_order`], that has at least one placement for
/// the generate stage. `demand` looks a model up in the registry.
pub fn choose_model(
    tier: Tier,
    routes: &TierRoutes,
    ctx: &PlacementContext<'_>,
    demand: impl Fn(&str) -> Option<ModelDemand>,
    now: Instant,
) -> Result<TierChoice, NoTierAvailable> {
    let mut tried = Vec::new();
    for t in fallback_order(tier) {
        for model in routes.models(t) {
            let Some(d) = demand(model) else {
                tried.push(SkippedModel {
                    tier: t,
                    model: model.clone(),
                    why: "no registry entry",
                });
                continue;
            };
            let mut req = PlacementRequest::new(StageKind::Generate, model, d.memory_bytes, now)
                .with_precision(d.precision);
            req.backends_supported_by_model = d.backends;
            let placement = ctx.place(&req);
            if placement.best().is_some() {
                return Ok(TierChoice {
                    model: model.clone(),
                    requested: tier,
                    tier_used: t,
                    placement,
                });
            }
            tried.push(SkippedModel {
                tier: t,
                model: model.clone(),
                why: "no eligible device",
            });
        }
    }
    Err(NoTierAvailable {
        requested: tier,
        tried,
    })
}

#[cfg(test)]
mod tests;
