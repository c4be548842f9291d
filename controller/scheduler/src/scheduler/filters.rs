//! The per-device filters and score terms the scan applies, in the order the module docs
//! list them. Internal to the scheduler.

use super::*;

/// Per-request tables computed once before the scan.
pub(super) struct Prepared<'a> {
    pub(super) stage: StageKind,
    pub(super) ranks: [Option<u8>; DEVICE_KINDS.len()],
    /// Preferred backend bit indices per kind, best first, already filtered by the model.
    pub(super) order: [([u8; 16], u8); DEVICE_KINDS.len()],
    pub(super) model_mask: u64,
    /// Bits (by `precision_index`) of the precisions the model may compute at.
    pub(super) precisions: u8,
    pub(super) model_id: Option<u32>,
    pub(super) need: u64,
    /// [`PlacementRequest::partial_min_bytes`].
    pub(super) partial_min: Option<u64>,
    pub(super) headroom_ratio: f64,
    pub(super) pack: bool,
    pub(super) allow_simulated: bool,
    pub(super) engine_only: bool,
    pub(super) policy: &'a PlacementPolicy,
    pub(super) latency: Option<&'a ModelLatency>,
    pub(super) avg_ms: Option<f64>,
}

impl<'a> Prepared<'a> {
    pub(super) fn new(
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
        let mut order = [([0u8; 16], 0u8); DEVICE_KINDS.len()];
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
            precisions: std::iter::once(req.precision)
                .chain(req.also_at.iter().copied())
                .fold(0u8, |m, p| m | (1 << precision_index(p))),
            model_id: view.model_id(&req.model),
            need: req.memory_bytes,
            partial_min: req.partial_min_bytes,
            headroom_ratio: policy.memory_headroom_ratio,
            pack: policy.mode == PlacementMode::Pack,
            allow_simulated: policy.allow_simulated,
            engine_only: req.engine_only,
            policy,
            latency: model_latency,
            avg_ms: model_latency.and_then(ModelLatency::average_ms),
        }
    }
}

/// Result of the cheap filters and the latency-free part of the score.
#[derive(Clone, Copy)]
pub(super) struct Early {
    pub(super) backend: u8,
    pub(super) warm: bool,
    pub(super) base: f64,
    pub(super) terms: ScoreTerms,
}

/// Cheap filters and base score: no hashing except in the rare unlisted-backend path.
#[inline]
pub(super) fn early(
    view: &ClusterView,
    h: &HotDevice,
    p: &Prepared<'_>,
) -> Result<Early, RejectReason> {
    if !h.node_ready {
        return Err(RejectReason::NodeNotReady);
    }
    if !h.healthy {
        return Err(RejectReason::DeviceUnhealthy);
    }
    if h.simulated && !p.allow_simulated {
        return Err(RejectReason::SimulatedNotAllowed);
    }
    if p.engine_only && !h.engine {
        return Err(RejectReason::NeedsEngine);
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
    let at_a_precision = (0..h.precision_masks.len())
        .filter(|i| p.precisions & (1 << i) != 0)
        .fold(0u64, |m, i| m | h.precision_masks[i]);
    let usable = h.backend_mask & p.model_mask & at_a_precision;
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
    // An attached engine loads what it serves in memory Switchyard does not manage.
    if p.stage == StageKind::Generate
        && h.kind == DeviceType::IntelNpu
        && p.need > p.policy.npu_generate_max_bytes
    {
        return Err(RejectReason::TooBigForNpuGeneration {
            needed_bytes: p.need,
            max_bytes: p.policy.npu_generate_max_bytes,
        });
    }
    let mut need = if warm || h.engine { 0 } else { p.need };
    let mut evict_bytes = 0;
    let mut device_share = None;
    if !warm && !h.engine {
        let headroom = (h.total as f64 * p.headroom_ratio) as u64;
        let room = h.free.saturating_add(h.reclaimable);
        let mut wanted = need.saturating_add(headroom);
        if wanted > room {
            // A model bigger than the device: part of it on a GPU, the rest on the host.
            match p.partial_min {
                Some(min)
                    if matches!(
                        h.kind,
                        DeviceType::NvidiaGpu | DeviceType::IntelGpu | DeviceType::VulkanGpu
                    ) && min.saturating_add(headroom) <= room =>
                {
                    let usable = room - headroom;
                    device_share = Some(usable as f64 / need.max(1) as f64);
                    need = usable;
                    wanted = room;
                }
                _ => {
                    return Err(RejectReason::DoesNotFit {
                        needed_bytes: need,
                        headroom_bytes: headroom,
                        free_bytes: h.free,
                        reclaimable_bytes: h.reclaimable,
                    });
                }
            }
        }
        evict_bytes = wanted.saturating_sub(h.free);
    }
    let w = &p.policy.weights;
    let free_after_ratio = if h.total == 0 {
        0.0
    } else {
        h.free.saturating_sub(need) as f64 / h.total as f64
    };
    // Queue depth: what this controller has in flight there, or what the agent reports
    // (other controllers, requests dispatched before a restart), whichever is more.
    let depth = h.in_flight.max(h.queue_depth);
    let load = if h.max_concurrency > 0 {
        (depth as f64 / h.max_concurrency as f64).min(1.0)
    } else {
        depth as f64 / (depth as f64 + 8.0)
    };
    let policy = p.policy;
    let throttle = h.throttle.unwrap_or(policy.default_throttle_celsius);
    // A figure not reported costs nothing: the term is at its full weight.
    let thermal_ratio = h.temperature.map_or(1.0, |t| {
        ((throttle - t) / policy.thermal_margin_celsius).clamp(0.0, 1.0)
    });
    let power_ratio = match (h.power, h.power_limit) {
        (Some(draw), Some(cap)) => (1.0 - draw / cap).clamp(0.0, 1.0),
        _ => 1.0,
    };
    let terms = ScoreTerms {
        // A partial offload decodes at a speed between the GPU's and the CPU's (about the CPU's
        // divided by the share left on the host), nearer the CPU's the more stays there: up to
        // three kind steps less, so it still edges out the CPU alone.
        partial: device_share.map_or(0.0, |s| -3.0 * w.kind_step * (1.0 - s.clamp(0.0, 1.0))),
        device_share,
        preference: preference_term(w.kind_step, rank),
        // The warm bonus shrinks with the device's load: a saturated warm device must not
        // keep the work while an idle one of the same kind stays cold.
        warm: if warm { w.warm * (1.0 - load) } else { 0.0 },
        tops: tops_term(w.tops, w.tops_ref, h.tops),
        memory: w.memory
            * if p.pack {
                1.0 - free_after_ratio
            } else {
                free_after_ratio
            },
        queue: w.queue * (1.0 - load),
        latency: 0.0,
        utilization: w.utilization * (1.0 - h.utilization.unwrap_or(0.0)),
        thermal: w.thermal * thermal_ratio,
        power: w.power * power_ratio,
        kind_rank: rank,
        tops_value: h.tops,
        tops_measured: h.tops_measured,
        free_after_ratio,
        evict_bytes,
        pack: p.pack,
        in_flight: h.in_flight,
        queue_depth: h.queue_depth,
        max_concurrency: h.max_concurrency,
        utilization_value: h.utilization,
        temperature_celsius: h.temperature,
        throttle_celsius: throttle,
        power_watts: h.power,
        power_limit_watts: h.power_limit,
        latency_ms: None,
        model_latency_ms: p.avg_ms,
    };
    Ok(Early {
        backend,
        warm,
        base: terms.total(),
        terms,
    })
}

/// Kind preference term: `kind_step × (5 − rank)`.
#[inline]
pub(super) fn preference_term(kind_step: f64, rank: u8) -> f64 {
    kind_step * (DEVICE_KINDS.len() as f64 - rank as f64)
}

/// TOPS term: `weight × min(1, ln(1 + tops) / ln(1 + tops_ref))` — a log scale, so a
/// device ten times faster gains the same whether it is a CPU or a datacentre GPU.
#[inline]
pub(super) fn tops_term(weight: f64, tops_ref: f64, tops: f64) -> f64 {
    let den = tops_ref.max(0.0).ln_1p();
    if den > 0.0 && tops > 0.0 {
        weight * (tops.ln_1p() / den).min(1.0)
    } else {
        0.0
    }
}

/// A usable backend the policy does not list: the first in the device's own order.
#[cold]
pub(super) fn unlisted_backend(view: &ClusterView, h: &HotDevice, usable: u64) -> Option<u8> {
    let (_, dev) = view.resolve(h);
    dev.backends.iter().find_map(|b| {
        let bit = view.backend_bit(b)?;
        (usable & bit != 0).then(|| bit.trailing_zeros() as u8)
    })
}

/// Late filters (exclusions, breakers): `Ok(probe)` when the device stays eligible.
pub(super) fn late(
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
pub(super) fn latency_term(p: &Prepared<'_>, h: &HotDevice) -> (f64, Option<f64>) {
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
pub(super) fn better(a_score: f64, a: (&str, &str), b_score: f64, b: (&str, &str)) -> Ordering {
    b_score.total_cmp(&a_score).then_with(|| a.cmp(&b))
}

pub(super) fn candidate(
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
