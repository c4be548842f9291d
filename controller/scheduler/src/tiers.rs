//! Tiers and their fallback: which generator answers when the requested tier has nowhere to run.
//!
//! The router classifies a prompt into a [`Tier`]: one of the built-in three, or a tier the user
//! named (a fitted router's `sql`, `german`, …). [`TierRoutes`] lists the models of each tier
//! (best first). When no model of a tier has a healthy placement, the next tier in
//! [`TierRoutes::fallback_order`] is tried; for the built-ins:
//!
//! | requested | order | why |
//! |---|---|---|
//! | `heavy` | heavy → code → fast | degrade gradually: the next most capable model first |
//! | `code`  | code → heavy → fast | a general heavy model codes better than the fast one |
//! | `fast`  | fast → code → heavy | stay cheap: the mid tier before the largest |
//!
//! A user tier falls back to the tiers its route lists (`[routes.fallback]`), else to the
//! built-ins in the `fast` order, then to the other user tiers by name.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use switchyard_backend_core::{Precision, StageKind};

use crate::scheduler::{Placement, PlacementContext, PlacementRequest};

/// An answer tier chosen by the router: a lower-case name of 1–32 characters (`a-z`, `0-9`,
/// `_`, `-`, starting with a letter or digit).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tier(Arc<str>);

impl Tier {
    /// The built-in tiers, in their default fallback order from `fast`.
    pub const BUILT_IN: [&'static str; 3] = ["fast", "code", "heavy"];

    /// Short, cheap answers.
    pub fn fast() -> Tier {
        Tier(Arc::from("fast"))
    }

    /// Programming questions.
    pub fn code() -> Tier {
        Tier(Arc::from("code"))
    }

    /// Long or hard questions.
    pub fn heavy() -> Tier {
        Tier(Arc::from("heavy"))
    }

    /// The tier's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it is one of `fast`, `code`, `heavy`.
    pub fn is_built_in(&self) -> bool {
        Self::BUILT_IN.contains(&self.as_str())
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A string that cannot name a tier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid tier name {0:?}: use 1-32 characters a-z, 0-9, '_' or '-', starting with a letter or digit"
)]
pub struct TierParseError(pub String);

impl FromStr for Tier {
    type Err = TierParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Tier(Arc::from(s)))
        } else {
            Err(TierParseError(s.to_owned()))
        }
    }
}

impl TryFrom<String> for Tier {
    type Error = TierParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Tier> for String {
    fn from(t: Tier) -> String {
        t.0.to_string()
    }
}

/// Generator models per tier, best first, in the order the tiers were added, and each tier's
/// explicit fallback list, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TierRoutes {
    tiers: Vec<(Tier, Vec<String>)>,
    fallback: Vec<(Tier, Vec<Tier>)>,
}

impl TierRoutes {
    /// Models of one tier (empty for a tier without a route).
    pub fn models(&self, tier: &Tier) -> &[String] {
        self.tiers
            .iter()
            .find(|(t, _)| t == tier)
            .map_or(&[], |(_, m)| m.as_slice())
    }

    /// Adds a model to a tier (e.g. from registry entries' `tier` field).
    pub fn push(&mut self, tier: Tier, model: impl Into<String>) {
        match self.tiers.iter_mut().find(|(t, _)| *t == tier) {
            Some((_, models)) => models.push(model.into()),
            None => self.tiers.push((tier, vec![model.into()])),
        }
    }

    /// Sets the tiers `tier` falls back to, in order.
    pub fn set_fallback(&mut self, tier: Tier, then: Vec<Tier>) {
        self.fallback.retain(|(t, _)| *t != tier);
        self.fallback.push((tier, then));
    }

    /// Every tier with at least one model, in the order added.
    pub fn tiers(&self) -> impl Iterator<Item = &Tier> {
        self.tiers
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(t, _)| t)
    }

    /// Tiers to try, in order, for a requested tier (see the module doc); each once.
    pub fn fallback_order(&self, tier: &Tier) -> Vec<Tier> {
        let mut order = vec![tier.clone()];
        let mut add = |t: Tier| {
            if !order.contains(&t) {
                order.push(t);
            }
        };
        if let Some((_, then)) = self.fallback.iter().find(|(t, _)| t == tier) {
            then.iter().cloned().for_each(&mut add);
        }
        let built_in: &[&str] = match tier.as_str() {
            "heavy" => &["heavy", "code", "fast"],
            "code" => &["code", "heavy", "fast"],
            _ => &Tier::BUILT_IN,
        };
        built_in
            .iter()
            .map(|n| Tier(Arc::from(*n)))
            .for_each(&mut add);
        let mut users: Vec<Tier> = self.tiers().filter(|t| !t.is_built_in()).cloned().collect();
        users.sort();
        users.into_iter().for_each(add);
        order
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
    for t in routes.fallback_order(&tier) {
        for model in routes.models(&t) {
            let Some(d) = demand(model) else {
                tried.push(SkippedModel {
                    tier: t.clone(),
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
                tier: t.clone(),
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
