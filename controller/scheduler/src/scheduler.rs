//! Placement: filter then score every (node, device, backend) for one stage of one request.
//!
//! Filters, in order (the first that fails is the rejection reason):
//! node not ready → device unhealthy → simulated (unless the policy allows them) → device kind
//! not allowed for the stage → queue full (`in_flight ≥ max_concurrency`; NPUs and NCS2 sticks
//! are concurrency-1) → no backend usable by both the device and the model (the registry
//! entry's `backends`, computing at its `precision` on that device) → does not fit
//! (`needed + headroom × total > free`; a resident model needs nothing) → excluded (failed
//! earlier in this request) → circuit open / half-open with its probe in flight.
//!
//! Score (higher wins, terms in [`ScoreTerms`], weights and formulas in [`crate::policy`]):
//! kind preference, warm bonus, TOPS (log scale, measured when known), free memory after
//! placement (spread) or its complement (pack), idle share of the queue (what this controller
//! sent or what the agent reports, whichever is more), latency EWMA against the model's
//! average, and what the agent reports: utilisation, thermal headroom before the throttle
//! point, power headroom under the cap. Ties break on (node name, device id), ascending.
//!
//! [`place`] is the fast path: it keeps only the best `top_k` in a small sorted buffer, looks
//! up breakers and latency only for devices whose upper-bound score could still enter it, and
//! builds no strings except for the returned candidates. [`explain`] evaluates everything and
//! returns every candidate and every rejection with its reason (`switchyard explain`).

use std::cmp::Ordering;
use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;
use switchyard_backend_core::{DeviceType, Precision, StageKind};

use crate::circuit::{Admission, CircuitBreakers, CircuitState};
use crate::latency::{LatencyStats, ModelLatency};
use crate::policy::{PlacementMode, PlacementPolicy};
use crate::view::{
    ClusterView, DEVICE_KINDS, HotDevice, MAX_BACKENDS, kind_index, kind_name, precision_index,
    resident_bit,
};

mod filters;
mod outcome;
mod request;

use filters::*;
pub use outcome::{Candidate, Explanation, Placement, RejectReason, Rejection, ScoreTerms};
pub use request::PlacementRequest;

/// The inputs [`place`] and [`explain`] read besides the request, bundled.
#[derive(Debug, Clone, Copy)]
pub struct PlacementContext<'a> {
    /// The cluster snapshot.
    pub view: &'a ClusterView,
    /// The policy.
    pub policy: &'a PlacementPolicy,
    /// Circuit breakers.
    pub breakers: &'a CircuitBreakers,
    /// Latency statistics.
    pub latency: &'a LatencyStats,
}

impl PlacementContext<'_> {
    /// [`place`] with this context.
    pub fn place(&self, request: &PlacementRequest) -> Placement {
        place(self.view, request, self.policy, self.breakers, self.latency)
    }

    /// [`explain`] with this context.
    pub fn explain(&self, request: &PlacementRequest) -> Explanation {
        explain(self.view, request, self.policy, self.breakers, self.latency)
    }
}

/// One slot of the fast path's buffer: (score, hot index, early part, probe, latency term).
type TopEntry = (f64, usize, Early, bool, (f64, Option<f64>));

/// The fast path: the best `request.top_k` candidates, best first.
///
/// Equal to the first `top_k` candidates of [`explain`] for the same inputs.
pub fn place(
    view: &ClusterView,
    request: &PlacementRequest,
    policy: &PlacementPolicy,
    breakers: &CircuitBreakers,
    latency: &LatencyStats,
) -> Placement {
    let k = request.top_k.max(1);
    let p = Prepared::new(view, request, policy, latency);
    let w = &policy.weights;
    let lat_max = w.latency;
    // Upper bound of every term but preference and TOPS (warm only if some device has it).
    let rest_max = w.memory + w.queue + lat_max + w.utilization + w.thermal + w.power;
    let warm_bit = p.model_id.map_or(0, resident_bit);
    let mut top: Vec<TopEntry> = Vec::with_capacity(k + 1);
    // Score of the k-th entry once the buffer is full; -inf before.
    let mut kth = f64::NEG_INFINITY;
    let hot = view.hot();
    // Kinds best first: once the buffer is full, a whole kind whose best possible score
    // cannot enter it is skipped at once (and so are all kinds ranked after it).
    let mut kinds = [(u8::MAX, DeviceType::Cpu); DEVICE_KINDS.len()];
    let mut n_kinds = 0;
    for kind in DEVICE_KINDS {
        if let Some(rank) = p.ranks[kind_index(kind)] {
            kinds[n_kinds] = (rank, kind);
            n_kinds += 1;
        }
    }
    kinds[..n_kinds].sort_unstable_by_key(|&(r, _)| r);
    let warm_any = if p.model_id.is_some() { w.warm } else { 0.0 };
    for &(rank, kind) in &kinds[..n_kinds] {
        let pref = preference_term(w.kind_step, rank);
        if pref + w.tops + warm_any + rest_max < kth {
            break;
        }
        for &i in view.devices_of_kind(kind) {
            let i = i as usize;
            let h = &hot[i];
            if kth > f64::NEG_INFINITY {
                // Cheapest exit: even with perfect memory, queue and latency it cannot enter.
                let warm_max = if h.resident_bits & warm_bit != 0 {
                    w.warm
                } else {
                    0.0
                };
                if pref + tops_term(w.tops, w.tops_ref, h.tops) + warm_max + rest_max < kth {
                    continue;
                }
            }
            let Ok(e) = early(view, h, &p) else {
                continue;
            };
            if e.base + lat_max < kth {
                continue;
            }
            let lat = latency_term(&p, h);
            let score = e.base + lat.0;
            if score < kth {
                continue;
            }
            let (node, dev) = view.resolve(h);
            let key = (node.name.as_str(), dev.id.as_str());
            let pos = top.partition_point(|(s, j, ..)| {
                let (n2, d2) = view.resolve(&hot[*j]);
                better(*s, (&n2.name, &d2.id), score, key) == Ordering::Less
            });
            // Exclusions and breakers only remove devices: check them only for a device that
            // would enter the buffer.
            if pos < k {
                let Ok(probe) = late(&node.name, &dev.id, request, breakers) else {
                    continue;
                };
                top.insert(pos, (score, i, e, probe, lat));
                top.truncate(k);
                if top.len() == k {
                    kth = top[k - 1].0;
                }
            }
        }
    }
    Placement {
        candidates: top
            .iter()
            .map(|(_, i, e, probe, lat)| candidate(view, &hot[*i], e, *probe, *lat))
            .collect(),
        devices_seen: hot.len(),
    }
}

/// The dry run: every device evaluated, candidates ranked, rejections with reasons.
pub fn explain(
    view: &ClusterView,
    request: &PlacementRequest,
    policy: &PlacementPolicy,
    breakers: &CircuitBreakers,
    latency: &LatencyStats,
) -> Explanation {
    let p = Prepared::new(view, request, policy, latency);
    let mut candidates = Vec::new();
    let mut rejected = Vec::new();
    for h in view.hot() {
        let (node, dev) = view.resolve(h);
        let result = early(view, h, &p).and_then(|e| {
            late(&node.name, &dev.id, request, breakers).map(|probe| {
                let lat = latency_term(&p, h);
                candidate(view, h, &e, probe, lat)
            })
        });
        match result {
            Ok(c) => candidates.push(c),
            Err(reason) => {
                let detail = match reason {
                    RejectReason::NoUsableBackend => {
                        format!(
                            "device offers [{}], model runs on [{}] at {}",
                            dev.backends
                                .iter()
                                .map(|b| {
                                    let ps: Vec<&str> = switchyard_backend_core::PRECISIONS
                                        .iter()
                                        .filter(|p| dev.backend_computes_at(b, **p))
                                        .map(|p| p.as_str())
                                        .collect();
                                    format!("{b}({})", ps.join("/"))
                                })
                                .collect::<Vec<_>>()
                                .join(", "),
                            request
                                .backends_supported_by_model
                                .as_ref()
                                .map_or_else(|| "any".to_owned(), |b| b.join(", ")),
                            std::iter::once(request.precision)
                                .chain(request.also_at.iter().copied())
                                .map(|p| p.as_str())
                                .collect::<Vec<_>>()
                                .join(" or ")
                        ) + &unusable_for(dev, request)
                    }
                    _ => String::new(),
                };
                rejected.push(Rejection {
                    node: node.name.clone(),
                    device: dev.id.clone(),
                    kind: dev.kind,
                    reason,
                    detail,
                });
            }
        }
    }
    candidates.sort_by(|a, b| better(a.score, (&a.node, &a.device), b.score, (&b.node, &b.device)));
    Explanation {
        stage: request.stage,
        model: request.model.clone(),
        candidates,
        rejected,
    }
}

const _: () = assert!(MAX_BACKENDS <= 64);

#[cfg(test)]
mod telemetry_tests;
#[cfg(test)]
mod tests;

/// Why the backends the model runs on are unusable on `dev`, as the agent reported ("; llama_cpp
/// unusable: no llama-server: …"), empty when the agent gave no reason.
fn unusable_for(dev: &crate::view::DeviceView, request: &PlacementRequest) -> String {
    dev.unusable_backends
        .iter()
        .filter(|(b, reason)| {
            !reason.is_empty()
                && request
                    .backends_supported_by_model
                    .as_ref()
                    .is_none_or(|m| m.contains(b))
        })
        .map(|(b, reason)| format!("; {b} unusable: {reason}"))
        .collect()
}
