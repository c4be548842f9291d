//! `switchyard explain`: dry run — the ranked candidate devices for every stage of a prompt.

use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};
use switchyard_proto::v1::{PipelineRequest, StageExplanation};

use super::pipeline;
use crate::args::{ExplainArgs, Output};
use crate::output::{self, stage_name, table};

/// Asks the controller to place (not run) the prompt and prints every candidate.
pub async fn run(args: &ExplainArgs) -> Result<()> {
    let req = PipelineRequest {
        prompt: args.prompt.clone(),
        explain_only: true,
        ..Default::default()
    };
    let resp = pipeline(
        &args.client.controller,
        req,
        Duration::from_secs(30),
        args.client.token.as_deref(),
    )
    .await?;
    match args.output {
        Output::Json => output::print_json(&Value::Array(
            resp.explanation.iter().map(stage_json).collect(),
        ))?,
        Output::Table => {
            for s in &resp.explanation {
                println!("{}", stage_table(s));
            }
        }
    }
    Ok(())
}

fn stage_json(s: &StageExplanation) -> Value {
    json!({"stage": stage_name(s.stage), "model": s.model, "candidates": s.candidates.iter().map(|c| json!({
        "node": c.node, "device": c.device_id, "backend": c.backend, "score": c.score,
        "eligible": c.filtered_reason.is_empty(), "filtered_reason": c.filtered_reason, "score_detail": c.score_detail,
    })).collect::<Vec<_>>()})
}

/// `stage · model`, then the candidates: eligible ones ranked, filtered ones with the reason.
fn stage_table(s: &StageExplanation) -> String {
    let mut rank = 0;
    let rows: Vec<Vec<String>> = s
        .candidates
        .iter()
        .map(|c| {
            let (r, verdict) = if c.filtered_reason.is_empty() {
                rank += 1;
                (
                    rank.to_string(),
                    format!("{:.3}  {}", c.score, c.score_detail),
                )
            } else {
                ("-".to_string(), format!("filtered: {}", c.filtered_reason))
            };
            vec![
                r,
                c.node.clone(),
                c.device_id.clone(),
                if c.backend.is_empty() {
                    "-".into()
                } else {
                    c.backend.clone()
                },
                verdict,
            ]
        })
        .collect();
    format!(
        "{} · {}\n{}",
        stage_name(s.stage),
        s.model,
        table::render(
            &["RANK", "NODE", "DEVICE", "BACKEND", "SCORE / REASON"],
            &rows
        )
    )
}
