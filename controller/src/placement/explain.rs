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
    let reasons: Vec<String> = e
        .rejected
        .iter()
        .take(8)
        .map(|r| format!("{}/{}: {}", r.node, r.device, r.reason))
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
