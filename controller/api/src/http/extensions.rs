//! Switchyard extension `POST /v1/pipeline`: classify → [retrieve] → generate, or a dry-run
//! explanation. The document store's routes are in `documents.rs`.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use switchyard_proto::v1::{PipelineRequest, PipelineResponse, SamplingParams, StageKind};

use super::error::HttpError;
use super::extract::JsonBody;
use super::{AppState, fields, trace};
use crate::validate::{self, invalid};

/// The JSON body of a pipeline answer.
pub(crate) fn pipeline_json(r: &PipelineResponse) -> Value {
    let explanation: Vec<Value> = r
        .explanation
        .iter()
        .map(|e| {
            json!({
                "stage": StageKind::try_from(e.stage).unwrap_or(StageKind::Unspecified).short_name(),
                "model": e.model,
                "candidates": e.candidates.iter().map(|c| json!({
                    "node": c.node, "device": c.device_id, "backend": c.backend,
                    "score": c.score, "eligible": c.filtered_reason.is_empty(),
                    "filtered_reason": c.filtered_reason, "score_detail": c.score_detail,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "object": "switchyard.pipeline",
        "tier": r.tier,
        "model": r.model,
        "text": r.text,
        "context_documents": r.context_documents,
        "retrieved": r.retrieved.iter().map(super::documents::chunk_json).collect::<Vec<_>>(),
        "usage": {
            "prompt_tokens": r.prompt_tokens,
            "completion_tokens": r.completion_tokens,
            "total_tokens": r.prompt_tokens + r.completion_tokens,
        },
        "trace": r.trace.iter().map(trace::json).collect::<Vec<_>>(),
        "explanation": explanation,
    })
}

pub(crate) async fn pipeline(
    State(st): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Response, HttpError> {
    let started = Instant::now();
    fields::only(
        &body,
        "",
        &[
            "prompt",
            "retrieve",
            "top_k",
            "max_tokens",
            "temperature",
            "top_p",
            "seed",
            "stop",
            "explain",
        ],
        &[],
    )?;
    let prompt = fields::req_string(&body, "prompt")?;
    validate::prompt(&prompt, &st.cfg)?;
    let top_k = fields::opt_positive_u32(&body, "top_k")?.unwrap_or(0);
    validate::top_k(top_k, &st.cfg)?;
    let temperature = fields::opt_f64(&body, "temperature")?.unwrap_or(0.0);
    let top_p = fields::opt_f64(&body, "top_p")?.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(invalid("top_p", format!("top_p must be in (0, 1], got {top_p}")).into());
    }
    let sampling = SamplingParams {
        max_tokens: fields::opt_positive_u32(&body, "max_tokens")?.unwrap_or(0),
        temperature: temperature as f32,
        top_p: top_p as f32,
        seed: fields::opt_u64(&body, "seed")?,
        stop: fields::opt_string_or_list(&body, "stop")?,

        ..Default::default()
    };
    validate::sampling(&sampling, &st.cfg)?;
    let collection = fields::opt_string(&body, "collection")?.unwrap_or_default();
    validate::collection(&collection)?;
    let min_score = super::documents::pipeline_min_score(&body)?;
    let req = PipelineRequest {
        prompt,
        sampling: Some(sampling),
        retrieve: fields::opt_bool(&body, "retrieve")?.unwrap_or(false),
        top_k,
        explain_only: fields::opt_bool(&body, "explain")?.unwrap_or(false),
        collection,
        min_score,
    };
    let deadline = st.deadline();
    let resp = st
        .until(deadline, st.inf.run_pipeline(req, deadline))
        .await?;
    let mut headers = trace::headers(resp.trace.iter());
    trace::put_total(&mut headers, started);
    Ok((headers, Json(pipeline_json(&resp))).into_response())
}
