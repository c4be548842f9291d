//! `switchyard run` and `switchyard explain`: the pipeline from the command line.

use std::time::Duration;

use anyhow::Result;
use serde_json::json;
use switchyard_controller::table;
use switchyard_proto::v1::inference_client::InferenceClient;
use switchyard_proto::v1::{
    AddDocumentsRequest, PipelineRequest, PipelineResponse, SamplingParams, StageKind,
};

use crate::cli::{DocsAction, DocsArgs, ExplainArgs, Output, RunArgs, controller_channel};

fn stage_name(raw: i32) -> &'static str {
    StageKind::try_from(raw)
        .unwrap_or(StageKind::Unspecified)
        .short_name()
}

/// A request carrying `authorization: Bearer <token>` when a token is given.
fn authorized<T>(message: T, token: Option<&str>) -> Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    if let Some(t) = token {
        let value = format!("Bearer {t}")
            .parse()
            .map_err(|_| anyhow::anyhow!("--token contains characters not allowed in a header"))?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

async fn pipeline(
    url: &str,
    req: PipelineRequest,
    timeout: Duration,
    token: Option<&str>,
) -> Result<PipelineResponse> {
    let channel = controller_channel(url).await?;
    let mut client = InferenceClient::new(channel);
    let mut request = authorized(req, token)?;
    request.set_timeout(timeout);
    let resp = client
        .run_pipeline(request)
        .await
        .map_err(|s| anyhow::anyhow!("pipeline failed ({:?}): {}", s.code(), s.message()))?;
    Ok(resp.into_inner())
}

/// `switchyard run`.
pub async fn run(args: &RunArgs) -> Result<()> {
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        anyhow::bail!("--timeout must be a positive number of seconds");
    }
    let req = PipelineRequest {
        prompt: args.prompt.clone(),
        sampling: Some(SamplingParams {
            max_tokens: args.max_tokens,
            temperature: args.temperature,
            top_p: 1.0,
            seed: None,
            stop: Vec::new(),
        }),
        retrieve: args.retrieve,
        top_k: 3,
        explain_only: false,
    };
    let resp = pipeline(
        &args.client.controller,
        req,
        Duration::from_secs_f64(args.timeout),
        args.client.token.as_deref(),
    )
    .await?;
    match args.output {
        Output::Json => {
            let trace: Vec<_> = resp
                .trace
                .iter()
                .map(|t| {
                    json!({"stage": stage_name(t.stage), "model": t.model, "node": t.node, "device": t.device_id,
                           "backend": t.backend, "queue_ms": t.queue_ms, "compute_ms": t.compute_ms,
                           "retries": t.retries, "batch_size": t.batch_size, "simulated": t.simulated})
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "tier": resp.tier, "model": resp.model, "text": resp.text,
                    "context_documents": resp.context_documents,
                    "prompt_tokens": resp.prompt_tokens, "completion_tokens": resp.completion_tokens,
                    "trace": trace,
                }))?
            );
        }
        Output::Table => {
            println!("{}", resp.text.trim());
            println!();
            println!(
                "tier: {}   model: {}   tokens: {} prompt + {} completion",
                resp.tier, resp.model, resp.prompt_tokens, resp.completion_tokens
            );
            let rows: Vec<Vec<String>> = resp
                .trace
                .iter()
                .map(|t| {
                    let mut device = t.device_id.clone();
                    if t.simulated {
                        device.push_str(" [simulated]");
                    }
                    vec![
                        stage_name(t.stage).to_string(),
                        t.model.clone(),
                        t.node.clone(),
                        device,
                        t.backend.clone(),
                        format!("{:.1}", t.queue_ms),
                        format!("{:.1}", t.compute_ms),
                        t.retries.to_string(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(
                    &[
                        "STAGE",
                        "MODEL",
                        "NODE",
                        "DEVICE",
                        "BACKEND",
                        "QUEUE MS",
                        "COMPUTE MS",
                        "RETRIES"
                    ],
                    &rows
                )
            );
        }
    }
    Ok(())
}

/// `switchyard explain`.
pub async fn explain(args: &ExplainArgs) -> Result<()> {
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
        Output::Json => {
            let stages: Vec<_> = resp
                .explanation
                .iter()
                .map(|s| {
                    json!({"stage": stage_name(s.stage), "model": s.model, "candidates": s.candidates.iter().map(|c| json!({
                        "node": c.node, "device": c.device_id, "backend": c.backend, "score": c.score,
                        "eligible": c.filtered_reason.is_empty(), "filtered_reason": c.filtered_reason, "score_detail": c.score_detail,
                    })).collect::<Vec<_>>()})
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&stages)?);
        }
        Output::Table => {
            for s in &resp.explanation {
                println!("{} · {}", stage_name(s.stage), s.model);
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
                print!(
                    "{}",
                    table::render(
                        &["RANK", "NODE", "DEVICE", "BACKEND", "SCORE / REASON"],
                        &rows
                    )
                );
                println!();
            }
        }
    }
    Ok(())
}

/// `switchyard docs add`.
pub async fn docs(args: &DocsArgs) -> Result<()> {
    match &args.action {
        DocsAction::Add { texts, client } => {
            let token = &client.token;
            let mut client = InferenceClient::new(controller_channel(&client.controller).await?);
            let ids = client
                .add_documents(authorized(
                    AddDocumentsRequest {
                        documents: texts.clone(),
                    },
                    token.as_deref(),
                )?)
                .await
                .map_err(|s| {
                    anyhow::anyhow!("adding documents failed ({:?}): {}", s.code(), s.message())
                })?
                .into_inner()
                .ids;
            println!("added {} document(s): ids {:?}", ids.len(), ids);
            Ok(())
        }
    }
}
