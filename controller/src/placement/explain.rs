//! Placement outcomes in the terms clients see: the ranked candidates of a dry run, and the
//! error when nothing can run a stage.

use switchyard_api::ApiError;
use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::{Candidate as ProtoCandidate, StageExplanation};
use switchyard_scheduler::{Explanation, PlacementRequest, RejectReason};

/// The wire form of one stage's explanation: scored candidates, then the rejected ones
/// with their reason.
pub fn stage_explanation(req: &PlacementRequest, e: &Explanation) -> StageExplanation {
    let mut candidates: Vec<ProtoCandidate> = e
        .candidates
        .iter()
        .map(|c| ProtoCandidate {
            node: c.node.clone(),
            device_id: c.device.clone(),
            backend: c.backend.clone(),
            score: c.score,
            filtered_reason: String::new(),
            score_detail: c.score_detail(),
        })
        .collect();
    candidates.extend(e.rejected.iter().map(|r| ProtoCandidate {
        node: r.node.clone(),
        device_id: r.device.clone(),
        backend: String::new(),
        score: 0.0,
        filtered_reason: r.reason.to_string(),
        score_detail: String::new(),
    }));
    StageExplanation {
        stage: switchyard_proto::convert::stage_to_wire(req.stage),
        model: req.model.to_string(),
        candidates,
    }
}

/// Why no device can run `req`: ResourceExhausted (retry later) when every eligible device
/// is busy, Unavailable otherwise; the message lists the first reasons.
pub fn no_placement(req: &PlacementRequest, e: &Explanation) -> ApiError {
    if let Some(err) = does_not_fit(req, e) {
        return err;
    }
    let reasons: Vec<String> = e
        .rejected
        .iter()
        .take(8)
        .map(|r| match r.reason {
            // What the device offers and why the model's backends are unusable there.
            RejectReason::NoUsableBackend if !r.detail.is_empty() => {
                format!("{}/{}: {} ({})", r.node, r.device, r.reason, r.detail)
            }
            _ => format!("{}/{}: {}", r.node, r.device, r.reason),
        })
        .collect();
    let busy = |r: &RejectReason| matches!(r, RejectReason::QueueFull { .. });
    let all_busy = !e.rejected.is_empty()
        && e.rejected
            .iter()
            .all(|r| busy(&r.reason) || matches!(r.reason, RejectReason::Excluded))
        && e.rejected.iter().any(|r| busy(&r.reason));
    ApiError::new(
        if all_busy {
            ErrorClass::ResourceExhausted
        } else {
            ErrorClass::Unavailable
        },
        format!(
            "no device can run {} for the {} stage ({})",
            req.model,
            req.stage.as_str(),
            if reasons.is_empty() {
                "no ready nodes".to_string()
            } else {
                reasons.join("; ")
            }
        ),
    )
}

/// When memory is the only thing in the way (every device that could serve the model lacks
/// room, none is merely busy or cooling down): "does not fit anywhere", with what it needs
/// and the device with the most room.
fn does_not_fit(req: &PlacementRequest, e: &Explanation) -> Option<ApiError> {
    let transient = |r: &RejectReason| {
        matches!(
            r,
            RejectReason::QueueFull { .. }
                | RejectReason::CircuitOpen { .. }
                | RejectReason::ProbeInFlight
                | RejectReason::Excluded
        )
    };
    if !e.candidates.is_empty() || e.rejected.iter().any(|r| transient(&r.reason)) {
        return None;
    }
    let (needed, room, at) = e
        .rejected
        .iter()
        .filter_map(|r| match r.reason {
            RejectReason::DoesNotFit {
                needed_bytes,
                headroom_bytes,
                free_bytes,
                reclaimable_bytes,
            } => Some((
                needed_bytes.saturating_add(headroom_bytes),
                free_bytes.saturating_add(reclaimable_bytes),
                r,
            )),
            _ => None,
        })
        .max_by_key(|(_, room, _)| *room)?;
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    Some(ApiError::new(
        ErrorClass::ResourceExhausted,
        format!(
            "{} does not fit anywhere: needs {:.2} GiB (with the placement headroom), the largest free is {:.2} GiB on {}/{}",
            req.model,
            gib(needed),
            gib(room),
            at.node,
            at.device
        ),
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use switchyard_backend_core::{DeviceType, StageKind};
    use switchyard_scheduler::Rejection;

    use super::*;

    fn rejected(node: &str, reason: RejectReason) -> Rejection {
        Rejection {
            node: node.into(),
            device: "cpu".into(),
            kind: DeviceType::Cpu,
            reason,
            detail: String::new(),
        }
    }

    fn fit(free: u64) -> RejectReason {
        RejectReason::DoesNotFit {
            needed_bytes: 40 << 30,
            headroom_bytes: 1 << 30,
            free_bytes: free,
            reclaimable_bytes: 1 << 30,
        }
    }

    #[test]
    fn a_model_too_big_for_every_device_says_what_it_needs_and_the_largest_room() {
        let req = PlacementRequest::new(StageKind::Generate, "llama-70b", 40 << 30, Instant::now());
        let e = Explanation {
            stage: StageKind::Generate,
            model: "llama-70b".into(),
            candidates: Vec::new(),
            rejected: vec![
                rejected("a", fit(7 << 30)),
                rejected("b", fit(23 << 30)),
                rejected("c", RejectReason::ModelFilesMissing),
            ],
        };
        let err = no_placement(&req, &e);
        assert_eq!(err.class, ErrorClass::ResourceExhausted);
        assert_eq!(
            err.message,
            "llama-70b does not fit anywhere: needs 41.00 GiB (with the placement headroom), the largest free is 24.00 GiB on b/cpu"
        );
        // A busy device might take it later: the general message, listing reasons.
        let mut busy = e;
        busy.rejected.push(rejected(
            "d",
            RejectReason::QueueFull {
                in_flight: 1,
                max_concurrency: 1,
            },
        ));
        assert!(
            no_placement(&req, &busy)
                .message
                .starts_with("no device can run")
        );
    }
}
