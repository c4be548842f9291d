//! Placement: filter then score every (node, device, backend) for one stage of one request.
//!
//! Filters, in order (the first that fails is the rejection reason):
//! node not ready → device unhealthy → simulated (when the policy refuses them) → device kind
//! not allowed for the stage → queue full (`in_flight ≥ max_concurrency`; NPUs and NCS2 sticks
//! are concurrency-1) → no backend usable by both the device and the model → does not fit
//! (`needed + headroom × total > free`; a resident model needs nothing) → excluded (failed
//! earlier in this request) → circuit open / half-open with its probe in flight.
//!
//! Score (higher wins, terms in [`ScoreTerms`], weights in [`crate::policy::ScoreWeights`]):
//! kind preference, warm bonus, TOPS (measured when known), free memory after placement
//! (spread) or its complement (pack), idle share of the queue, latency EWMA against the model's
//! average. Ties break on (node name, device id), ascending.
//!
//! [`place`] is the fast path: it keeps only the best `top_k` in a small sorted buffer, looks
//! up breakers and latency only for devices whose upper-bound score could still enter it, and
//! builds no strings except for the returned candidates. [`explain`] evaluates everything and
//! returns every candidate and every rejection with its reason (`switchyard explain`).

use std::cmp::Ordering;
use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;
use switchyard_backend_core::{DeviceType, StageKind};

use crate::circuit::{Admission, CircuitBreakers, CircuitState};
use crate::latency::{LatencyStats, ModelLatency};
use crate::policy::{PlacementMode, PlacementPolicy};
use crate::view::{
    ClusterView, DEVICE_KINDS, HotDevice, MAX_BACKENDS, kind_index, kind_name, resident_bit,
};

/// What to place.
#[derive(Debug, Clone)]
pub struct PlacementRequest {
    /// The stage.
    pub stage: StageKind,
    /// Model name (matched against devices' resident models).
    pub model: String,
    /// Memory the model needs when loaded, bytes (registry `memory_bytes`).
    pub memory_bytes: u64,
    /// Backend ids the model can run on; `None`: any.
    pub backends_supported_by_model: Option<Vec<String>>,
    /// (node, device) pairs to skip: where this request already failed.
    pub exclude: Vec<(String, String)>,
    /// How many candidates [`place`] returns (at least 1).
    pub top_k: usize,
    /// The current time (circuit breakers' cooldowns).
    pub now: Instant,
}

impl PlacementRequest {
    /// A request for the best 3 candidates, any backend, nothing excluded.
    pub fn new(
        stage: StageKind,
        model: impl Into<String>,
        memory_bytes: u64,
        now: Instant,
    ) -> Self {
        PlacementRequest {
            stage,
            model: model.into(),
            memory_bytes,
            backends_supported_by_model: None,
            exclude: Vec::new(),
            top_k: 3,
            now,
        }
    }

    /// Restricts the backends the model may use.
    pub fn with_backends<S: Into<String>>(mut self, backends: impl IntoIterator<Item = S>) -> Self {
        self.backends_supported_by_model = Some(backends.into_iter().map(Into::into).collect());
        self
    }

    /// Skips a device (it failed for this request).
    pub fn excluding(mut self, node: impl Into<String>, device: impl Into<String>) -> Self {
        self.exclude.push((node.into(), device.into()));
        self
    }

    /// Sets how many candidates [`place`] returns.
    pub fn with_top_k(mut self, k: usize) -> Self {
        self.top_k = k;
        self
    }
}

/// The score of a candidate, term by term (each already weighted), plus the figures behind it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScoreTerms {
    /// Kind preference term.
    pub preference: f64,
    /// Warm (model resident) bonus.
    pub warm: f64,
    /// TOPS term.
    pub tops: f64,
    /// Free-memory term (pack or spread).
    pub memory: f64,
    /// Queue term.
    pub queue: f64,
    /// Latency term.
    pub latency: f64,
    /// 0 = the stage's most preferred kind.
    pub kind_rank: u8,
    /// TOPS figure used.
    pub tops_value: f64,
    /// Whether it was measured.
    pub tops_measured: bool,
    /// Free memory after placement / total memory.
    pub free_after_ratio: f64,
    /// Bytes of idle models the agent must evict for the model (and headroom) to fit.
    pub evict_bytes: u64,
    /// Whether the free-memory term was computed for packing.
    pub pack: bool,
    /// Requests in flight on the device.
    pub in_flight: u32,
    /// Device concurrency limit (0: unbounded).
    pub max_concurrency: u32,
    /// Latency EWMA of this model on this device, ms.
    pub latency_ms: Option<f64>,
    /// Latency EWMA of this model over all devices, ms.
    pub model_latency_ms: Option<f64>,
}

impl ScoreTerms {
    /// Sum of the terms.
    pub fn total(&self) -> f64 {
        self.preference + self.warm + self.tops + self.memory + self.queue + self.latency
    }
}

impl fmt::Display for ScoreTerms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kind rank {} {:+.2}",
            self.kind_rank + 1,
            self.preference
        )?;
        if self.warm > 0.0 {
            write!(f, ", warm {:+.2}", self.warm)?;
        }
        write!(
            f,
            ", tops {:.1} ({}) {:+.2}",
            self.tops_value,
            if self.tops_measured {
                "measured"
            } else {
                "catalog"
            },
            self.tops
        )?;
        write!(
            f,
            ", free after {:.0}% ({}) {:+.2}",
            self.free_after_ratio * 100.0,
            if self.pack { "pack" } else { "spread" },
            self.memory
        )?;
        if self.evict_bytes > 0 {
            write!(
                f,
                ", evicts {:.1} MB of idle models (LRU)",
                mb(self.evict_bytes)
            )?;
        }
        if self.max_concurrency > 0 {
            write!(
                f,
                ", queue {}/{} {:+.2}",
                self.in_flight, self.max_concurrency, self.queue
            )?;
        } else {
            write!(f, ", queue {} {:+.2}", self.in_flight, self.queue)?;
        }
        match (self.latency_ms, self.model_latency_ms) {
            (Some(d), Some(m)) => write!(
                f,
                ", latency {d:.1} ms vs {m:.1} ms avg {:+.2}",
                self.latency
            )?,
            _ => write!(f, ", latency unknown {:+.2}", self.latency)?,
        }
        write!(f, " = {:.2}", self.total())
    }
}

/// An eligible (node, device, backend), best first in [`Placement::candidates`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// Node name.
    pub node: String,
    /// Device id.
    pub device: String,
    /// Device kind.
    pub kind: DeviceType,
    /// Backend to run on.
    pub backend: String,
    /// Total score.
    pub score: f64,
    /// The model is already resident there.
    pub warm: bool,
    /// The device's breaker is half-open: this request would be its probe (call
    /// [`CircuitBreakers::on_dispatch`] when sending it).
    pub probe: bool,
    /// The score, term by term.
    pub terms: ScoreTerms,
}

impl Candidate {
    /// Human-readable breakdown of the score (`switchyard explain`).
    pub fn score_detail(&self) -> String {
        self.terms.to_string()
    }
}

/// Why a device was not a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum RejectReason {
    /// The node is lost or draining.
    NodeNotReady,
    /// The device reports unhealthy.
    DeviceUnhealthy,
    /// Simulated device and the policy refuses them.
    SimulatedNotAllowed,
    /// The stage's preferences do not list this kind and unlisted kinds are refused.
    KindNotAllowed {
        /// Device kind.
        kind: DeviceType,
        /// Stage.
        stage: StageKind,
    },
    /// The device's queue is full (concurrency-1 devices: busy).
    QueueFull {
        /// Requests in flight.
        in_flight: u32,
        /// Limit.
        max_concurrency: u32,
    },
    /// No backend is usable on the device and supported by the model.
    NoUsableBackend,
    /// The model does not fit with the policy's headroom.
    DoesNotFit {
        /// Bytes the model needs.
        needed_bytes: u64,
        /// Bytes that must stay free.
        headroom_bytes: u64,
        /// Bytes free now.
        free_bytes: u64,
        /// Bytes idle models hold that eviction could free.
        reclaimable_bytes: u64,
    },
    /// The node's agent does not have the model's files.
    ModelFilesMissing,
    /// The request already failed there.
    Excluded,
    /// The device's circuit is open.
    CircuitOpen {
        /// Time before a probe is allowed.
        retry_in: Duration,
    },
    /// The circuit is half-open and its one probe is in flight.
    ProbeInFlight,
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::NodeNotReady => write!(f, "node not ready (lost or draining)"),
            RejectReason::DeviceUnhealthy => write!(f, "device unhealthy"),
            RejectReason::SimulatedNotAllowed => {
                write!(f, "simulated device (allow_simulated = false)")
            }
            RejectReason::KindNotAllowed { kind, stage } => write!(
                f,
                "{} not in stage_preferences.{} (allow_unlisted_kinds = false)",
                kind_name(*kind),
                stage.as_str()
            ),
            RejectReason::QueueFull {
                in_flight,
                max_concurrency,
            } => write!(f, "queue full: {in_flight}/{max_concurrency} in flight"),
            RejectReason::NoUsableBackend => write!(f, "no usable backend for the model"),
            RejectReason::DoesNotFit {
                needed_bytes,
                headroom_bytes,
                free_bytes,
                reclaimable_bytes,
            } => {
                write!(
                    f,
                    "does not fit: needs {:.1} MB + {:.1} MB headroom, {:.1} MB free",
                    mb(*needed_bytes),
                    mb(*headroom_bytes),
                    mb(*free_bytes)
                )?;
                if *reclaimable_bytes > 0 {
                    write!(f, " + {:.1} MB held by idle models", mb(*reclaimable_bytes))?;
                }
                Ok(())
            }
            RejectReason::ModelFilesMissing => write!(
                f,
                "model files missing on this node (run scripts/setup.sh there, or check [models] dir)"
            ),
            RejectReason::Excluded => write!(f, "excluded: this request already failed there"),
            RejectReason::CircuitOpen { retry_in } => {
                write!(
                    f,
                    "circuit open (probe allowed in {:.1} s)",
                    retry_in.as_secs_f64()
                )
            }
            RejectReason::ProbeInFlight => write!(f, "circuit half-open, probe in flight"),
        }
    }
}

/// A device that was filtered out, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    /// Node name.
    pub node: String,
    /// Device id.
    pub device: String,
    /// Device kind.
    pub kind: DeviceType,
    /// The first filter that failed.
    pub reason: RejectReason,
    /// Extra context (e.g. the backends on each side for [`RejectReason::NoUsableBackend`]).
    pub detail: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} ({}): {}",
            self.node,
            self.device,
            kind_name(self.kind),
            self.reason
        )?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

/// The fast path's answer: the best candidates, best first (empty: nowhere to run).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placement {
    /// Up to `top_k` candidates, best first.
    pub candidates: Vec<Candidate>,
    /// Devices looked at.
    pub devices_seen: usize,
}

impl Placement {
    /// The best candidate.
    pub fn best(&self) -> Option<&Candidate> {
        self.candidates.first()
    }
}

/// The dry run: every candidate ranked and every rejection with its reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// Stage.
    pub stage: StageKind,
    /// Model.
    pub model: String,
    /// All eligible candidates, best first.
    pub candidates: Vec<Candidate>,
    /// All rejected devices, in view order.
    pub rejected: Vec<Rejection>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} {}: {} candidate(s), {} rejected",
            self.stage.as_str(),
            self.model,
            self.candidates.len(),
            self.rejected.len()
        )?;
        for (i, c) in self.candidates.iter().enumerate() {
            writeln!(
                f,
                "  #{} {}/{} ({}, {}){} score {:.2}: {}",
                i + 1,
                c.node,
                c.device,
                kind_name(c.kind),
                c.backend,
                if c.probe { " [probe]" } else { "" },
                c.score,
                c.score_detail()
            )?;
        }
        for r in &self.rejected {
            writeln!(f, "  rejected {r}")?;
        }
        Ok(())
    }
}

/// Per-request tables computed once before the scan.
struct Prepared<'a> {
    stage: StageKind,
    ranks: [Option<u8>; 5],
    /// Preferred backend bit indices per kind, best first, already filtered by the model.
    order: [([u8; 16], u8); 5],
    model_mask: u64,
    model_id: Option<u32>,
    need: u64,
    headroom_ratio: f64,
    pack: bool,
    allow_simulated: bool,
    policy: &'a PlacementPolicy,
    latency: Option<&'a ModelLatency>,
    avg_ms: Option<f64>,
}

impl<'a> Prepared<'a> {
    fn new(
        view: &ClusterView,
        req: &PlacementRequest,
        policy: &'a PlacementPolicy,
        latency: &'a LatencyStats,
    ) -> Self {
        let model_mask = match &req.backends_supported_by_model {
            None => u64::MAX,
            Some(list) => list
                .iter()
                .filter_map(|b| view.backend_bit(b))
                .fold(0, |m, b| m | b),
        };
        let mut order = [([0u8; 16], 0u8); 5];
        for (k, kind) in DEVICE_KINDS.iter().enumerate() {
            let (slots, len) = &mut order[k];
            for name in policy.backend_preferences.for_kind(*kind) {
                if let Some(bit) = view.backend_bit(name)
                    && model_mask & bit != 0
                    && (*len as usize) < slots.len()
                {
                    slots[*len as usize] = bit.trailing_zeros() as u8;
                    *len += 1;
                }
            }
        }
        let model_latency = latency.model(req.stage, &req.model);
        Prepared {
            stage: req.stage,
            ranks: policy.kind_ranks(req.stage),
            order,
            model_mask,
            model_id: view.model_id(&req.model),
            need: req.memory_bytes,
            headroom_ratio: policy.memory_headroom_ratio,
            pack: policy.mode == PlacementMode::Pack,
            allow_simulated: policy.allow_simulated,
            policy,
            latency: model_latency,
            avg_ms: model_latency.and_then(ModelLatency::average_ms),
        }
    }
}

/// Result of the cheap filters and the latency-free part of the score.
#[derive(Clone, Copy)]
struct Early {
    backend: u8,
    warm: bool,
    base: f64,
    terms: ScoreTerms,
}

/// Cheap filters and base score: no hashing except in the rare unlisted-backend path.
#[inline]
fn early(view: &ClusterView, h: &HotDevice, p: &Prepared<'_>) -> Result<Early, RejectReason> {
    if !h.node_ready {
        return Err(RejectReason::NodeNotReady);
    }
    if !h.healthy {
        return Err(RejectReason::DeviceUnhealthy);
    }
    if h.simulated && !p.allow_simulated {
        return Err(RejectReason::SimulatedNotAllowed);
    }
    if let Some(available) = &h.available
        && !p.model_id.is_some_and(|id| available.contains(&id))
    {
        return Err(RejectReason::ModelFilesMissing);
    }
    let k = kind_index(h.kind);
    let Some(rank) = p.ranks[k] else {
        return Err(RejectReason::KindNotAllowed {
            kind: h.kind,
            stage: p.stage,
        });
    };
    if h.max_concurrency > 0 && h.in_flight >= h.max_concurrency {
        return Err(RejectReason::QueueFull {
            in_flight: h.in_flight,
            max_concurrency: h.max_concurrency,
        });
    }
    let usable = h.backend_mask & p.model_mask;
    if usable == 0 {
        return Err(RejectReason::NoUsableBackend);
    }
    let (slots, len) = &p.order[k];
    let backend = match slots[..*len as usize]
        .iter()
        .find(|&&b| usable & (1u64 << b) != 0)
    {
        Some(&b) => b,
        None => unlisted_backend(view, h, usable).ok_or(RejectReason::NoUsableBackend)?,
    };
    let warm = p.model_id.is_some_and(|id| h.resident.contains(&id));
    let need = if warm { 0 } else { p.need };
    let mut evict_bytes = 0;
    if !warm {
        let headroom = (h.total as f64 * p.headroom_ratio) as u64;
        let wanted = need.saturating_add(headroom);
        if wanted > h.free.saturating_add(h.reclaimable) {
            return Err(RejectReason::DoesNotFit {
                needed_bytes: need,
                headroom_bytes: headroom,
                free_bytes: h.free,
                reclaimable_bytes: h.reclaimable,
            });
        }
        evict_bytes = wanted.saturating_sub(h.free);
    }
    let w = &p.policy.weights;
    let free_after_ratio = if h.total == 0 {
        0.0
    } else {
        h.free.saturating_sub(need) as f64 / h.total as f64
    };
    let load = if h.max_concurrency > 0 {
        h.in_flight as f64 / h.max_concurrency as f64
    } else {
        h.in_flight as f64 / (h.in_flight as f64 + 8.0)
    };
    let terms = ScoreTerms {
        preference: preference_term(w.kind_step, rank),
        warm: if warm { w.warm } else { 0.0 },
        tops: tops_term(w.tops, w.tops_ref, h.tops),
        memory: w.memory
            * if p.pack {
                1.0 - free_after_ratio
            } else {
                free_after_ratio
            },
        queue: w.queue * (1.0 - load),
        latency: 0.0,
        kind_rank: rank,
        tops_value: h.tops,
        tops_measured: h.tops_measured,
        free_after_ratio,
        evict_bytes,
        pack: p.pack,
        in_flight: h.in_flight,
        max_concurrency: h.max_concurrency,
        latency_ms: None,
        model_latency_ms: p.avg_ms,
    };
    Ok(Early {
        backend,
        warm,
        base: terms.preference + terms.warm + terms.tops + terms.memory + terms.queue,
        terms,
    })
}

/// Kind preference term: `kind_step × (5 − rank)`.
#[inline]
fn preference_term(kind_step: f64, rank: u8) -> f64 {
    kind_step * (DEVICE_KINDS.len() as f64 - rank as f64)
}

/// TOPS term: `weight × tops / (tops + tops_ref)`.
#[inline]
fn tops_term(weight: f64, tops_ref: f64, tops: f64) -> f64 {
    let den = tops + tops_ref;
    if den > 0.0 { weight * tops / den } else { 0.0 }
}

/// A usable backend the policy does not list: the first in the device's own order.
#[cold]
fn unlisted_backend(view: &ClusterView, h: &HotDevice, usable: u64) -> Option<u8> {
    let (_, dev) = view.resolve(h);
    dev.backends.iter().find_map(|b| {
        let bit = view.backend_bit(b)?;
        (usable & bit != 0).then(|| bit.trailing_zeros() as u8)
    })
}

/// Late filters (exclusions, breakers): `Ok(probe)` when the device stays eligible.
fn late(
    node: &str,
    device: &str,
    req: &PlacementRequest,
    breakers: &CircuitBreakers,
) -> Result<bool, RejectReason> {
    if req
        .exclude
        .iter()
        .any(|(n, d)| n.as_str() == node && d.as_str() == device)
    {
        return Err(RejectReason::Excluded);
    }
    if breakers.all_closed() {
        return Ok(false);
    }
    match breakers.admission(node, device, req.now) {
        Admission::Allow => Ok(false),
        Admission::Probe => Ok(true),
        Admission::Deny(CircuitState::Open { retry_in }) => {
            Err(RejectReason::CircuitOpen { retry_in })
        }
        Admission::Deny(_) => Err(RejectReason::ProbeInFlight),
    }
}

/// Latency term and the device's EWMA.
#[inline]
fn latency_term(p: &Prepared<'_>, h: &HotDevice) -> (f64, Option<f64>) {
    let w = p.policy.weights.latency;
    let Some(lat) = p.latency else {
        return (w * 0.5, None);
    };
    match (lat.device_ms_by_key(h.key), p.avg_ms) {
        (Some(d), Some(avg)) if d + avg > 0.0 => (w * avg / (avg + d), Some(d)),
        (d, _) => (w * 0.5, d),
    }
}

/// Orders (score desc, node asc, device asc).
fn better(a_score: f64, a: (&str, &str), b_score: f64, b: (&str, &str)) -> Ordering {
    b_score.total_cmp(&a_score).then_with(|| a.cmp(&b))
}

fn candidate(
    view: &ClusterView,
    h: &HotDevice,
    e: &Early,
    probe: bool,
    lat: (f64, Option<f64>),
) -> Candidate {
    let (node, dev) = view.resolve(h);
    let mut terms = e.terms;
    terms.latency = lat.0;
    terms.latency_ms = lat.1;
    Candidate {
        node: node.name.clone(),
        device: dev.id.clone(),
        kind: h.kind,
        backend: view
            .backend_name(e.backend as u32)
            .unwrap_or_default()
            .to_owned(),
        score: e.base + lat.0,
        warm: e.warm,
        probe,
        terms,
    }
}

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
    let rest_max = w.memory + w.queue + lat_max;
    let warm_bit = p.model_id.map_or(0, resident_bit);
    let mut top: Vec<TopEntry> = Vec::with_capacity(k + 1);
    // Score of the k-th entry once the buffer is full; -inf before.
    let mut kth = f64::NEG_INFINITY;
    let hot = view.hot();
    // Kinds best first: once the buffer is full, a whole kind whose best possible score
    // cannot enter it is skipped at once (and so are all kinds ranked after it).
    let mut kinds = [(u8::MAX, DeviceType::Cpu); 5];
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
                    RejectReason::NoUsableBackend => format!(
                        "device offers [{}], model runs on [{}]",
                        dev.backends.join(", "),
                        request
                            .backends_supported_by_model
                            .as_ref()
                            .map_or_else(|| "any".to_owned(), |b| b.join(", "))
                    ),
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
mod tests {
    use super::*;
    use crate::circuit::BreakerConfig;
    use crate::latency::LatencyConfig;
    use crate::view::{DeviceView, NodeView};

    const GB: u64 = 1_000_000_000;

    fn dev(id: &str, kind: DeviceType, total: u64, free: u64, backends: &[&str]) -> DeviceView {
        let mut d = DeviceView::new(id, kind);
        d.memory_total_bytes = total;
        d.memory_free_bytes = free;
        d.backends = backends.iter().map(|s| s.to_string()).collect();
        d.tops = match kind {
            DeviceType::Cpu => 1.0,
            DeviceType::NvidiaGpu => 284.0,
            DeviceType::IntelGpu => 233.0,
            DeviceType::IntelNpu => 11.0,
            DeviceType::Ncs2 => 1.0,
        };
        d
    }

    fn cluster() -> ClusterView {
        ClusterView::new(vec![
            NodeView::new(
                "edge",
                vec![
                    dev(
                        "cpu",
                        DeviceType::Cpu,
                        16 * GB,
                        8 * GB,
                        &["ort-cpu", "openvino"],
                    ),
                    dev("ncs2-0", DeviceType::Ncs2, GB / 2, GB / 2, &["openvino"]),
                    dev("npu0", DeviceType::IntelNpu, 4 * GB, 4 * GB, &["openvino"]),
                ],
            ),
            NodeView::new(
                "gpu-box",
                vec![
                    dev("cpu", DeviceType::Cpu, 64 * GB, 32 * GB, &["ort-cpu"]),
                    dev(
                        "GPU-aaaa",
                        DeviceType::NvidiaGpu,
                        12 * GB,
                        10 * GB,
                        &["ort-cuda"],
                    ),
                ],
            ),
        ])
        .unwrap()
    }

    struct Ctx {
        policy: PlacementPolicy,
        breakers: CircuitBreakers,
        latency: LatencyStats,
        now: Instant,
    }

    impl Ctx {
        fn new() -> Self {
            Ctx {
                policy: PlacementPolicy::default(),
                breakers: CircuitBreakers::new(BreakerConfig::default()),
                latency: LatencyStats::new(LatencyConfig::default()),
                now: Instant::now(),
            }
        }
        fn req(&self, stage: StageKind, model: &str, mem: u64) -> PlacementRequest {
            PlacementRequest::new(stage, model, mem, self.now)
        }
        fn place(&self, v: &ClusterView, r: &PlacementRequest) -> Placement {
            let p = place(v, r, &self.policy, &self.breakers, &self.latency);
            let e = self.explain(v, r);
            let k = r.top_k.max(1).min(e.candidates.len());
            assert_eq!(p.candidates, e.candidates[..k], "place agrees with explain");
            p
        }
        fn explain(&self, v: &ClusterView, r: &PlacementRequest) -> Explanation {
            explain(v, r, &self.policy, &self.breakers, &self.latency)
        }
    }

    fn names(p: &Placement) -> Vec<(String, String)> {
        p.candidates
            .iter()
            .map(|c| (c.node.clone(), c.device.clone()))
            .collect()
    }

    #[test]
    fn classification_goes_to_the_preferred_kind() {
        let ctx = Ctx::new();
        let v = cluster();
        let p = ctx.place(&v, &ctx.req(StageKind::Classify, "router", 60_000_000));
        let best = p.best().unwrap();
        assert_eq!((best.node.as_str(), best.kind), ("edge", DeviceType::Ncs2));
        assert_eq!(best.backend, "openvino");
        assert_eq!(p.candidates[1].kind, DeviceType::IntelNpu);
        // Generation prefers the NVIDIA GPU and uses its CUDA backend.
        let p = ctx.place(&v, &ctx.req(StageKind::Generate, "smollm2", 750_000_000));
        assert_eq!(p.best().unwrap().device, "GPU-aaaa");
        assert_eq!(p.best().unwrap().backend, "ort-cuda");
        // Embedding prefers the NPU.
        let p = ctx.place(&v, &ctx.req(StageKind::Embed, "minilm", 60_000_000));
        assert_eq!(p.best().unwrap().kind, DeviceType::IntelNpu);
    }

    #[test]
    fn backend_follows_policy_then_model_support() {
        let ctx = Ctx::new();
        let v = cluster();
        let mut policy = PlacementPolicy::default();
        policy.stage_preferences.embed = vec![DeviceType::Cpu];
        policy.allow_unlisted_kinds = false;
        let r = ctx.req(StageKind::Embed, "m", 1);
        let p = place(&v, &r, &policy, &ctx.breakers, &ctx.latency);
        let edge = p.candidates.iter().find(|c| c.node == "edge").unwrap();
        assert_eq!(edge.backend, "openvino", "policy prefers openvino on cpu");
        let r = r.with_backends(["ort-cpu"]);
        let p = place(&v, &r, &policy, &ctx.breakers, &ctx.latency);
        assert!(p.candidates.iter().all(|c| c.backend == "ort-cpu"));
        // A backend the policy does not list is still usable.
        policy.backend_preferences.cpu.clear();
        let p = place(&v, &r, &policy, &ctx.breakers, &ctx.latency);
        assert_eq!(p.candidates.len(), 2);
        assert!(p.candidates.iter().all(|c| c.backend == "ort-cpu"));
        // Unlisted kinds refused: the explanation says so.
        let e = explain(&v, &r, &policy, &ctx.breakers, &ctx.latency);
        let npu = e.rejected.iter().find(|x| x.device == "npu0").unwrap();
        assert_eq!(
            npu.reason,
            RejectReason::KindNotAllowed {
                kind: DeviceType::IntelNpu,
                stage: StageKind::Embed
            }
        );
    }

    #[test]
    fn never_placed_where_it_does_not_fit_with_headroom() {
        let ctx = Ctx::new();
        let v = cluster();
        // 9.5 GB: GPU has 10 GB free but needs 1.2 GB headroom; CPU gpu-box has 32 GB free.
        let r = ctx.req(StageKind::Generate, "big", 9_500_000_000);
        let p = ctx.place(&v, &r);
        assert_eq!(names(&p), vec![("gpu-box".into(), "cpu".into())]);
        let e = ctx.explain(&v, &r);
        let gpu = e.rejected.iter().find(|x| x.device == "GPU-aaaa").unwrap();
        assert_eq!(
            gpu.reason,
            RejectReason::DoesNotFit {
                needed_bytes: 9_500_000_000,
                headroom_bytes: 1_200_000_000,
                reclaimable_bytes: 0,
                free_bytes: 10 * GB
            }
        );
        assert!(gpu.to_string().contains("does not fit"), "{gpu}");
        // 8.5 GB fits the GPU: 8.5 + 1.2 ≤ 10.
        let p = ctx.place(&v, &ctx.req(StageKind::Generate, "big", 8_500_000_000));
        assert_eq!(p.best().unwrap().device, "GPU-aaaa");
        // Every candidate keeps its headroom free.
        for c in &ctx.explain(&v, &r).candidates {
            let d = v.device(&c.node, &c.device).unwrap();
            assert!(
                r.memory_bytes + d.memory_total_bytes / 10 <= d.memory_free_bytes,
                "{c:?}"
            );
        }
    }

    #[test]
    fn resident_model_needs_no_memory_and_is_preferred() {
        let ctx = Ctx::new();
        let mut v = cluster();
        // Two NVIDIA-less choices for generation: both CPUs. Make edge's CPU warm and full.
        v.update_device("edge", "cpu", |d| {
            d.resident_models = vec!["smollm2".into()];
            d.memory_free_bytes = 100_000_000;
        });
        v.update_device("gpu-box", "GPU-aaaa", |d| d.healthy = false);
        let p = ctx.place(&v, &ctx.req(StageKind::Generate, "smollm2", 750_000_000));
        let best = p.best().unwrap();
        assert_eq!((best.node.as_str(), best.warm), ("edge", true));
        assert!(
            best.score_detail().contains("warm"),
            "{}",
            best.score_detail()
        );
        assert!(!p.candidates[1].warm);
        // Without residency edge's CPU would not fit at all.
        let p = ctx.place(&v, &ctx.req(StageKind::Generate, "other", 750_000_000));
        assert_eq!(names(&p)[0], ("gpu-box".into(), "cpu".into()));
        assert!(!names(&p).contains(&("edge".into(), "cpu".into())));
    }

    #[test]
    fn memory_held_by_idle_models_counts_as_room_and_the_eviction_is_explained() {
        let ctx = Ctx::new();
        let mut v = cluster();
        // The GPU (GPU-aaaa, 12 GB) is almost full: 1 GB free, 9 GB held by idle models.
        v.update_device("gpu-box", "GPU-aaaa", |d| {
            d.memory_free_bytes = GB;
            d.reclaimable_bytes = 9 * GB;
        });
        let r = ctx.req(StageKind::Generate, "big", 4 * GB);
        let p = ctx.place(&v, &r);
        let best = p.best().unwrap();
        assert_eq!(best.device, "GPU-aaaa", "{:?}", names(&p));
        // 4 GB + 1.2 GB headroom − 1 GB free = 4.2 GB to evict.
        let detail = best.score_detail();
        assert!(
            detail.contains("evicts 4200.0 MB of idle models"),
            "{detail}"
        );
        // Beyond free + reclaimable it does not fit, and the reason names both figures.
        let r = ctx.req(StageKind::Generate, "huge", 9_500_000_000);
        let e = ctx.explain(&v, &r);
        let gpu = e.rejected.iter().find(|x| x.device == "GPU-aaaa").unwrap();
        let why = gpu.to_string();
        assert!(
            why.contains("1000.0 MB free + 9000.0 MB held by idle models"),
            "{why}"
        );
    }

    #[test]
    fn a_node_without_the_model_files_is_never_chosen_and_says_why() {
        let ctx = Ctx::new();
        let mut v = cluster();
        // gpu-box reports only the router's files: generation must go to edge.
        let mut gpu_box = v.node("gpu-box").unwrap().clone();
        gpu_box.available_models = Some(vec!["router".into()]);
        v.upsert_node(gpu_box).unwrap();
        let r = ctx.req(StageKind::Generate, "smollm2", 750_000_000);
        let p = ctx.place(&v, &r);
        assert!(
            names(&p).iter().all(|(node, _)| node == "edge"),
            "{:?}",
            names(&p)
        );
        let e = ctx.explain(&v, &r);
        let gpu = e.rejected.iter().find(|x| x.device == "GPU-aaaa").unwrap();
        assert_eq!(gpu.reason, RejectReason::ModelFilesMissing);
        assert!(gpu.to_string().contains("model files missing"), "{gpu}");
        // The router's files are there: classification may still use gpu-box.
        let r = ctx.req(StageKind::Classify, "router", 60_000_000);
        assert!(
            ctx.explain(&v, &r)
                .rejected
                .iter()
                .all(|x| x.reason != RejectReason::ModelFilesMissing)
        );
    }

    #[test]
    fn busy_concurrency_one_device_is_rejected_with_reason() {
        let ctx = Ctx::new();
        let mut v = cluster();
        v.update_device("edge", "ncs2-0", |d| d.in_flight = 1);
        let r = ctx.req(StageKind::Classify, "router", 60_000_000);
        let p = ctx.place(&v, &r);
        assert_eq!(p.best().unwrap().kind, DeviceType::IntelNpu);
        let e = ctx.explain(&v, &r);
        let ncs = e.rejected.iter().find(|x| x.device == "ncs2-0").unwrap();
        assert_eq!(
            ncs.reason,
            RejectReason::QueueFull {
                in_flight: 1,
                max_concurrency: 1
            }
        );
        assert!(e.to_string().contains("queue full: 1/1"), "{e}");
    }

    #[test]
    fn open_circuit_excluded_devices_and_lost_nodes_are_skipped() {
        let mut ctx = Ctx::new();
        let mut v = cluster();
        let r = ctx.req(StageKind::Classify, "router", 60_000_000);
        for _ in 0..5 {
            ctx.breakers.record_failure("edge", "ncs2-0", ctx.now);
        }
        let p = ctx.place(&v, &r);
        assert_eq!(p.best().unwrap().device, "npu0");
        let e = ctx.explain(&v, &r);
        assert!(matches!(
            e.rejected[0].reason,
            RejectReason::CircuitOpen { .. }
        ));
        // After the cooldown the NCS2 is a probe candidate again.
        ctx.now += Duration::from_secs(10);
        let r2 = ctx.req(StageKind::Classify, "router", 60_000_000);
        let p = ctx.place(&v, &r2);
        assert!(p.best().unwrap().probe);
        ctx.breakers.on_dispatch("edge", "ncs2-0", ctx.now);
        let e = ctx.explain(&v, &r2);
        assert_eq!(e.rejected[0].reason, RejectReason::ProbeInFlight);

        // Retry after a failure on the NPU: excluded.
        let r3 = r2.clone().excluding("edge", "npu0");
        let p = ctx.place(&v, &r3);
        assert_eq!(p.best().unwrap().device, "cpu");
        assert!(
            ctx.explain(&v, &r3)
                .rejected
                .iter()
                .any(|x| x.device == "npu0" && x.reason == RejectReason::Excluded)
        );

        v.set_node_ready("edge", false);
        let p = ctx.place(&v, &r3);
        assert!(p.candidates.iter().all(|c| c.node == "gpu-box"));
        let e = ctx.explain(&v, &r3);
        assert_eq!(
            e.rejected
                .iter()
                .filter(|x| x.reason == RejectReason::NodeNotReady)
                .count(),
            3
        );
    }

    #[test]
    fn pack_and_spread_flip_the_memory_term() {
        let mut ctx = Ctx::new();
        let v = ClusterView::new(vec![
            NodeView::new(
                "a",
                vec![dev("cpu", DeviceType::Cpu, 10 * GB, 9 * GB, &["ort-cpu"])],
            ),
            NodeView::new(
                "b",
                vec![dev("cpu", DeviceType::Cpu, 10 * GB, 3 * GB, &["ort-cpu"])],
            ),
        ])
        .unwrap();
        let r = ctx.req(StageKind::Embed, "m", GB);
        assert_eq!(ctx.place(&v, &r).best().unwrap().node, "a");
        ctx.policy.mode = PlacementMode::Pack;
        assert_eq!(ctx.place(&v, &r).best().unwrap().node, "b");
    }

    #[test]
    fn lower_latency_and_measured_tops_win_within_a_kind_and_ties_are_stable() {
        let mut ctx = Ctx::new();
        let mk = || {
            ClusterView::new(vec![
                NodeView::new(
                    "b",
                    vec![dev(
                        "g",
                        DeviceType::NvidiaGpu,
                        12 * GB,
                        12 * GB,
                        &["ort-cuda"],
                    )],
                ),
                NodeView::new(
                    "a",
                    vec![dev(
                        "g",
                        DeviceType::NvidiaGpu,
                        12 * GB,
                        12 * GB,
                        &["ort-cuda"],
                    )],
                ),
            ])
            .unwrap()
        };
        let mut v = mk();
        let r = ctx.req(StageKind::Generate, "m", GB);
        // Identical devices: tie broken by node name.
        assert_eq!(names(&ctx.place(&v, &r))[0].0, "a");
        for _ in 0..10 {
            ctx.latency.record(
                StageKind::Generate,
                "m",
                "a",
                "g",
                Duration::from_millis(400),
            );
            ctx.latency.record(
                StageKind::Generate,
                "m",
                "b",
                "g",
                Duration::from_millis(100),
            );
        }
        assert_eq!(names(&ctx.place(&v, &r))[0].0, "b");
        ctx.latency = LatencyStats::new(LatencyConfig::default());
        v.update_device("b", "g", |d| d.measured_tops = Some(100.0));
        v.update_device("a", "g", |d| d.measured_tops = Some(400.0));
        let p = ctx.place(&v, &r);
        assert_eq!(names(&p)[0].0, "a");
        assert!(p.best().unwrap().score_detail().contains("measured"));
    }

    /// Deterministic pseudo-random clusters: the fast path equals explain's top k.
    #[test]
    fn fast_path_matches_explain_on_random_clusters() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..30 {
            let mut nodes = Vec::new();
            for n in 0..40 {
                let mut devs = Vec::new();
                for d in 0..4 {
                    let kind = DEVICE_KINDS[rnd(5) as usize];
                    let total = (1 + rnd(16)) * GB;
                    let mut x = dev(
                        &format!("d{d}"),
                        kind,
                        total,
                        rnd(total + 1),
                        &[["ort-cpu", "openvino", "ort-cuda"][rnd(3) as usize]],
                    );
                    x.healthy = rnd(10) != 0;
                    x.in_flight = rnd(3) as u32;
                    if rnd(4) == 0 {
                        x.resident_models = vec!["m".into()];
                    }
                    // Many exact ties: same tops, same memory on some.
                    if rnd(3) == 0 {
                        x.memory_total_bytes = 8 * GB;
                        x.memory_free_bytes = 8 * GB;
                        x.in_flight = 0;
                    }
                    devs.push(x);
                }
                let mut node = NodeView::new(format!("n{:02}", (n * 7) % 40), devs);
                node.ready = rnd(20) != 0;
                nodes.push(node);
            }
            let v = ClusterView::new(nodes).unwrap();
            let mut ctx = Ctx::new();
            for i in 0..20 {
                let node = format!("n{:02}", rnd(40));
                let device = format!("d{}", rnd(4));
                if i % 2 == 0 {
                    ctx.latency.record(
                        StageKind::Embed,
                        "m",
                        &node,
                        &device,
                        Duration::from_millis(1 + rnd(100)),
                    );
                } else {
                    for _ in 0..5 {
                        ctx.breakers.record_failure(&node, &device, ctx.now);
                    }
                }
            }
            for k in [1, 3, 10] {
                let mut r = ctx.req(StageKind::Embed, "m", rnd(4) * GB).with_top_k(k);
                if round % 3 == 0 {
                    r = r
                        .excluding("n01", "d1")
                        .with_backends(["openvino", "ort-cuda"]);
                }
                ctx.policy.mode = if round % 2 == 0 {
                    PlacementMode::Pack
                } else {
                    PlacementMode::Spread
                };
                ctx.place(&v, &r); // asserts agreement
                let e = ctx.explain(&v, &r);
                assert_eq!(e.candidates.len() + e.rejected.len(), v.device_count());
            }
        }
    }

    #[test]
    fn explain_lists_rejections_with_reasons() {
        let ctx = Ctx::new();
        let mut v = cluster();
        v.update_device("gpu-box", "cpu", |d| d.healthy = false);
        let r = ctx
            .req(StageKind::Generate, "smollm2", 750_000_000)
            .with_backends(["ort-cuda", "ort-cpu"]);
        let e = ctx.explain(&v, &r);
        let reasons: Vec<_> = e
            .rejected
            .iter()
            .map(|x| (x.device.as_str(), x.reason))
            .collect();
        assert!(reasons.contains(&("ncs2-0", RejectReason::NoUsableBackend)));
        assert!(reasons.contains(&("cpu", RejectReason::DeviceUnhealthy)));
        let text = e.to_string();
        assert!(text.contains("generate smollm2"), "{text}");
        assert!(
            text.contains("device offers [openvino], model runs on [ort-cuda, ort-cpu]"),
            "{text}"
        );
        assert!(
            text.contains("#1 gpu-box/GPU-aaaa (nvidia_gpu, ort-cuda)"),
            "{text}"
        );
        assert_eq!(e.candidates.len() + e.rejected.len(), v.device_count());
    }

    #[test]
    fn empty_view_yields_no_candidates() {
        let ctx = Ctx::new();
        let v = ClusterView::new(vec![]).unwrap();
        let p = ctx.place(&v, &ctx.req(StageKind::Embed, "m", 1));
        assert!(p.best().is_none());
        assert_eq!(p.devices_seen, 0);
    }
}
